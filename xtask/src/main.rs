//! The project's build tasks, in Rust so that they need nothing but cargo.
//!
//! `cargo run --release -p xtask -- build-web` builds the web app (`frontend-yew/`) into
//! `frontend-yew/dist/`, the folder the server serves at `/` (setting `server.static_dir`):
//!
//! 1. `cargo build --release --target wasm32-unknown-unknown -p agentstream-web`;
//! 2. wasm-bindgen, as a library of exactly the version in `Cargo.lock` (the generated glue and the
//!    `wasm-bindgen` crate the app is linked with must agree), in `--target web` mode;
//! 3. the glue, the wasm module and `style.css` written under names that carry their content hash
//!    (`agentstream-web-<hash>.js`, `agentstream-web-<hash>_bg.wasm`, `style-<hash>.css`: the server
//!    lets browsers cache those for good);
//! 4. `index.html` last, from `frontend-yew/index.html` with the stylesheet's hashed name and an inline
//!    module script that loads the app (the server's CSP admits it by its hash); then the files of
//!    earlier builds are removed.
//!
//! While it runs, `dist/.building` exists: the server's page at `/` then says the app is being built
//! and reloads itself until `index.html` is there. Nothing is downloaded but crates (no trunk, no
//! wasm-bindgen-cli, no wasm-opt).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

/// The app's package, and the stem of its output files.
const APP: &str = "agentstream-web";
/// The target it is built for.
const WASM_TARGET: &str = "wasm32-unknown-unknown";
/// The file that says a build is in progress (the server reads it; names starting with `.` are never
/// served).
const BUILDING_MARKER: &str = ".building";
/// In the page template: the stylesheet link, whose `href` gets the hashed name.
const STYLE_HREF: &str = "href=\"style.css\"";

type Result<T, E = String> = std::result::Result<T, E>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["build-web"] => build_web(),
        ["-h" | "--help" | "help"] => {
            println!("{}", usage());
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("{}", usage());
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage() -> &'static str {
    "usage: cargo run --release -p xtask -- build-web\n\
     \n\
     build-web   build the web app (frontend-yew/) into frontend-yew/dist/"
}

/// The workspace's root: the folder above this crate's.
fn workspace() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Removes the "building" marker when the build ends, however it ends.
struct Marker(PathBuf);

impl Drop for Marker {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn build_web() -> Result<()> {
    let root = workspace();
    let app_dir = root.join("frontend-yew");
    let dist = app_dir.join("dist");
    let started = SystemTime::now();

    check_bindgen_version(&root)?;

    std::fs::create_dir_all(&dist).map_err(|e| format!("cannot create {}: {e}", dist.display()))?;
    let marker = dist.join(BUILDING_MARKER);
    std::fs::write(&marker, format!("{}\n", std::process::id()))
        .map_err(|e| format!("cannot write {}: {e}", marker.display()))?;
    let _marker = Marker(marker);

    // 1. The app, for wasm32.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(&cargo)
        .current_dir(&root)
        .args([
            "build",
            "--release",
            "--locked",
            "--target",
            WASM_TARGET,
            "-p",
            APP,
        ])
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!(
            "building {APP} for {WASM_TARGET} failed ({status})"
        ));
    }
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|d| if d.is_absolute() { d } else { root.join(d) })
        .unwrap_or_else(|| root.join("target"));
    let wasm_in = target_dir
        .join(WASM_TARGET)
        .join("release")
        .join(format!("{APP}.wasm"));

    // 2. wasm-bindgen, web mode: an ES module whose default export `init` fetches and instantiates the
    // wasm file it is given.
    let mut output = wasm_bindgen_cli_support::Bindgen::new()
        .input_path(&wasm_in)
        .out_name(APP)
        .web(true)
        .map_err(|e| format!("wasm-bindgen: {e:#}"))?
        .typescript(false)
        .generate_output()
        .map_err(|e| format!("wasm-bindgen on {}: {e:#}", wasm_in.display()))?;
    if output.start().is_some() {
        return Err(
            "wasm-bindgen produced a separate start script, which the page does not load".into(),
        );
    }
    // Emitted as wasm-bindgen-cli would (it tidies the glue's indentation), then renamed below.
    let emitted = target_dir.join("xtask-build-web");
    let _ = std::fs::remove_dir_all(&emitted);
    output.emit(&emitted).map_err(|e| {
        format!(
            "wasm-bindgen cannot write into {}: {e:#}",
            emitted.display()
        )
    })?;
    let read = |name: String| {
        let path = emitted.join(name);
        std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    let js = read(format!("{APP}.js"))?;
    let wasm = read(format!("{APP}_bg.wasm"))?;
    let css = std::fs::read(app_dir.join("style.css"))
        .map_err(|e| format!("cannot read frontend-yew/style.css: {e}"))?;
    let template = std::fs::read_to_string(app_dir.join("index.html"))
        .map_err(|e| format!("cannot read frontend-yew/index.html: {e}"))?;

    // 3. The assets, under hashed names.
    let names = Assets {
        js: format!("{APP}-{}.js", content_hash(&js)),
        wasm: format!("{APP}-{}_bg.wasm", content_hash(&wasm)),
        css: format!("style-{}.css", content_hash(&css)),
    };
    write(&dist.join(&names.js), &js)?;
    write(&dist.join(&names.wasm), &wasm)?;
    write(&dist.join(&names.css), &css)?;
    // JS snippets of the app's dependencies (`#[wasm_bindgen(inline_js)]`, `module = "/…"`), imported
    // relative to the glue.
    for (identifier, list) in output.snippets() {
        for (i, js) in list.iter().enumerate() {
            let path = dist
                .join("snippets")
                .join(identifier)
                .join(format!("inline{i}.js"));
            write(&path, js.as_bytes())?;
        }
    }
    for (path, contents) in output.local_modules() {
        write(&dist.join("snippets").join(path), contents.as_bytes())?;
    }

    // 4. The page, last (its presence means "built"), then the old assets go.
    let page = render_index(&template, &names)?;
    let index = dist.join("index.html");
    let staging = dist.join(".index.html.new");
    write(&staging, page.as_bytes())?;
    // The page bears the time the build started, so that a source edited during the build counts as
    // newer than it (scripts/build-web compares the sources with it).
    std::fs::File::options()
        .write(true)
        .open(&staging)
        .and_then(|f| f.set_modified(started))
        .map_err(|e| format!("cannot set the time of {}: {e}", staging.display()))?;
    std::fs::rename(&staging, &index)
        .map_err(|e| format!("cannot move {} into place: {e}", index.display()))?;
    remove_stale(&dist, &names)?;

    println!(
        "web app: built into {} ({} KiB of wasm, {} KiB of JS)",
        dist.display(),
        wasm.len() / 1024,
        js.len() / 1024
    );
    Ok(())
}

/// The hashed names of one build's files.
struct Assets {
    js: String,
    wasm: String,
    css: String,
}

impl Assets {
    fn contains(&self, name: &str) -> bool {
        [&self.js, &self.wasm, &self.css].iter().any(|n| *n == name)
    }
}

/// Fails unless Cargo.lock's `wasm-bindgen` (the library the app links) is the version of
/// `wasm-bindgen-cli-support` (this tool's glue generator).
fn check_bindgen_version(root: &Path) -> Result<()> {
    let lock = std::fs::read_to_string(root.join("Cargo.lock"))
        .map_err(|e| format!("cannot read Cargo.lock: {e}"))?;
    let library = lock_versions(&lock, "wasm-bindgen");
    let support = lock_versions(&lock, "wasm-bindgen-cli-support");
    match (&library[..], &support[..]) {
        ([library], [support]) if library == support => Ok(()),
        _ => Err(format!(
            "Cargo.lock has wasm-bindgen {library:?} but wasm-bindgen-cli-support {support:?}: they must \
             be one and the same version (set xtask/Cargo.toml's wasm-bindgen-cli-support to \
             \"=<wasm-bindgen's version>\")"
        )),
    }
}

/// The versions of package `name` in a Cargo.lock.
fn lock_versions(lock: &str, name: &str) -> Vec<String> {
    let wanted = format!("name = \"{name}\"");
    let mut versions = Vec::new();
    let mut in_package = false;
    for line in lock.lines() {
        let line = line.trim();
        if line == "[[package]]" {
            in_package = false;
        } else if line.starts_with("name = ") {
            in_package = line == wanted;
        } else if in_package {
            if let Some(version) = line.strip_prefix("version = ") {
                versions.push(version.trim_matches('"').to_owned());
                in_package = false;
            }
        }
    }
    versions
}

/// The first 16 hex digits of the SHA-256 of `bytes`.
fn content_hash(bytes: &[u8]) -> String {
    Sha256::digest(bytes)[..8]
        .iter()
        .fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The page: the template with the hashed stylesheet, a preload of the glue and the wasm (so that both
/// download at once), and the inline module script that starts the app.
fn render_index(template: &str, names: &Assets) -> Result<String> {
    if template.matches(STYLE_HREF).count() != 1 {
        return Err(format!(
            "frontend-yew/index.html must link its stylesheet exactly once as {STYLE_HREF}"
        ));
    }
    if template.matches("</head>").count() != 1 {
        return Err("frontend-yew/index.html must have exactly one </head>".into());
    }
    let Assets { js, wasm, css } = names;
    let head = format!(
        "  <link rel=\"modulepreload\" href=\"/{js}\" />\n    \
         <link rel=\"preload\" href=\"/{wasm}\" as=\"fetch\" type=\"application/wasm\" crossorigin />\n    \
         <script type=\"module\">\nimport init from '/{js}';\nawait init({{ module_or_path: '/{wasm}' }});\n</script>\n  \
         </head>"
    );
    Ok(without_comments(template)
        .replace(STYLE_HREF, &format!("href=\"/{css}\""))
        .replace("</head>", &head))
}

/// `html` without its comments (and the blank lines they leave).
fn without_comments(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(start) = rest.find("<!--") {
        let Some(len) = rest[start..].find("-->") else {
            break;
        };
        out.push_str(&rest[..start]);
        rest = &rest[start + len + 3..];
    }
    out.push_str(rest);
    out.lines()
        .filter(|line| !line.trim().is_empty())
        .fold(String::new(), |mut s, line| {
            s.push_str(line);
            s.push('\n');
            s
        })
}

/// Writes a file, creating its folder.
fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    std::fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Removes the hashed assets of earlier builds (this tool's or trunk's) from `dist`.
fn remove_stale(dist: &Path, keep: &Assets) -> Result<()> {
    let entries =
        std::fs::read_dir(dist).map_err(|e| format!("cannot list {}: {e}", dist.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let ours = (name.starts_with(&format!("{APP}-"))
            && (name.ends_with(".js") || name.ends_with("_bg.wasm")))
            || (name.starts_with("style-") && name.ends_with(".css"));
        if ours && !keep.contains(name) {
            std::fs::remove_file(entry.path())
                .map_err(|e| format!("cannot remove {}: {e}", entry.path().display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Assets {
        Assets {
            js: "agentstream-web-0123456789abcdef.js".into(),
            wasm: "agentstream-web-fedcba9876543210_bg.wasm".into(),
            css: "style-00112233aabbccdd.css".into(),
        }
    }

    #[test]
    fn the_page_loads_the_hashed_assets() {
        let template =
            "<html><head><link rel=\"stylesheet\" href=\"style.css\" /></head><body></body></html>";
        let page = render_index(template, &names()).expect("renders");
        assert!(
            page.contains("href=\"/style-00112233aabbccdd.css\""),
            "{page}"
        );
        assert!(page.contains("import init from '/agentstream-web-0123456789abcdef.js';"));
        assert!(page.contains("module_or_path: '/agentstream-web-fedcba9876543210_bg.wasm'"));
        assert!(page.find("<script").expect("script") < page.find("</head>").expect("head"));
    }

    #[test]
    fn comments_are_dropped() {
        assert_eq!(
            without_comments("<html>\n  <!-- a\n  b -->\n  <head></head>\n</html>"),
            "<html>\n  <head></head>\n</html>\n"
        );
    }

    #[test]
    fn a_template_without_its_anchors_is_refused() {
        assert!(render_index("<html><head></head></html>", &names()).is_err());
        assert!(render_index("<html>href=\"style.css\"</html>", &names()).is_err());
    }

    #[test]
    fn lock_versions_are_read() {
        let lock = "[[package]]\nname = \"wasm-bindgen\"\nversion = \"0.2.130\"\n\n\
                    [[package]]\nname = \"wasm-bindgen-macro\"\nversion = \"0.2.130\"\n";
        assert_eq!(lock_versions(lock, "wasm-bindgen"), vec!["0.2.130"]);
        assert!(lock_versions(lock, "wasm-bindgen-cli-support").is_empty());
    }

    #[test]
    fn hashes_are_16_hex_digits() {
        let h = content_hash(b"x");
        assert_eq!(h.len(), 16);
        assert!(h.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(h, content_hash(b"y"));
    }
}
