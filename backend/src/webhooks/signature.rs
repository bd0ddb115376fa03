//! A delivery's signature: `sha256=` and the lowercase hex HMAC-SHA256 of the raw body, keyed with the
//! consumer's secret. The receiver computes the same over the bytes it read and compares: a body
//! changed on the way, or sent by anyone without the secret, does not match.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The `X-Agentstream-Signature` value of `body` under `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes a key of any length: `new_from_slice` cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for byte in digest {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_rfc_4231s_hmac_sha256_in_lowercase_hex() {
        // RFC 4231, test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_ne!(
            sign(b"Jefe", b"what do ya want for nothing!"),
            sign(b"Jefe", b"what do ya want for nothing?")
        );
    }
}
