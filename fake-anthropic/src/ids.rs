//! Random ids shaped like the real API's (`msg_01…`, `toolu_01…`, `req_011C…`), so code under
//! test that validates or logs ids sees realistic values.

/// The alphabet of the real ids' random part.
const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `len` random base62 characters.
fn random_base62(len: usize) -> String {
    let mut out = String::with_capacity(len);
    while out.len() < len {
        let mut n = uuid::Uuid::new_v4().as_u128();
        // 21 digits use 125 of the 128 random bits, never more than the number holds.
        for _ in 0..21 {
            if out.len() == len {
                break;
            }
            out.push(char::from(BASE62[(n % 62) as usize]));
            n /= 62;
        }
    }
    out
}

/// A message id, e.g. `msg_01XFDUDYJgAACzvnptvVoYEL`.
pub fn message_id() -> String {
    format!("msg_01{}", random_base62(22))
}

/// A tool-use id, e.g. `toolu_01A09q90qw90lq917835lq9A`.
pub fn tool_use_id() -> String {
    format!("toolu_01{}", random_base62(22))
}

/// A request id for the `request-id` header and error bodies, e.g. `req_011CSHoEeqs5C65K2cbYRxvd`.
pub fn request_id() -> String {
    format!("req_011C{}", random_base62(20))
}

/// Unit tests of this module's pure functions.
#[cfg(test)]
mod tests {
    use super::*;

    /// Ids must look like the real API's.
    #[test]
    fn ids_have_the_real_shape() {
        let m = message_id();
        assert_eq!(m.len(), 28);
        assert!(m.starts_with("msg_01"));
        assert!(m[4..].bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(tool_use_id().len(), 30);
        assert_eq!(request_id().len(), 28);
        assert_ne!(message_id(), message_id());
    }
}
