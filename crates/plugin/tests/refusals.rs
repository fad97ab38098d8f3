//! Every reason a plugin is refused, with the message an operator reads. The plugins whose
//! versions do not match abort the process if they are called, so these tests passing also
//! shows that the refusal came before any call into them.

mod common;

use common::{plugin, plugins_dir};
use plugboard_core::Provider;
use plugboard_microsoft_people::MicrosoftPeople;
use plugboard_plugin::{COMPILER, CORE_VERSION, PluginError};

/// The message, with what differs between machines and releases replaced by a placeholder.
fn redact(message: &str) -> String {
    let dir = plugins_dir();
    let canonical = dir.canonicalize().expect("the plugin directory exists");
    message
        .replace(&canonical.display().to_string(), "[plugins]")
        .replace(&dir.display().to_string(), "[plugins]")
        .replace(COMPILER, "[this compiler]")
        .replace(
            &format!("plugboard-core {CORE_VERSION}"),
            "plugboard-core [this version]",
        )
}

/// Why loading `path` fails.
fn refusal(path: &std::path::Path) -> String {
    match plugboard_plugin::load(path) {
        Ok(provider) => panic!("{} was loaded as `{}`", path.display(), provider.spec().id),
        Err(error) => redact(&error.to_string()),
    }
}

#[test]
fn a_missing_file_is_refused() {
    insta::assert_snapshot!(refusal(&plugins_dir().join("no-such-plugin.so")));
}

#[test]
fn a_file_that_is_not_a_library_is_refused() {
    let path = plugins_dir().join("not-a-library.so");
    std::fs::write(&path, "# a text file, not a shared object\n").unwrap();
    insta::assert_snapshot!(refusal(&path));
    insta::assert_snapshot!("a_directory", refusal(plugins_dir()));
}

#[test]
fn a_library_without_a_declaration_is_refused() {
    insta::assert_snapshot!(refusal(&plugin("not-a-plugin")));
}

#[test]
fn another_abi_version_is_refused_from_the_header_alone() {
    insta::assert_snapshot!(refusal(&plugin("wrong-abi")));
}

#[test]
fn another_core_version_is_refused_before_the_plugin_is_called() {
    insta::assert_snapshot!(refusal(&plugin("wrong-core")));
}

#[test]
fn another_compiler_is_refused_before_the_plugin_is_called() {
    insta::assert_snapshot!(refusal(&plugin("wrong-compiler")));
}

/// The host's registry knows every provider, so it makes this check; the loader's part is to
/// tell the declared id before running any of the plugin's code.
#[test]
fn a_second_provider_with_the_same_id_is_refused_before_the_plugin_is_called() {
    let built_in = MicrosoftPeople::new().unwrap();
    let path = plugin("microsoft-people");
    let opened = plugboard_plugin::open(&path).expect("a valid plugin");
    assert_eq!(opened.path(), path);
    assert_eq!(opened.id(), built_in.spec().id);
    let error = PluginError::DuplicateId {
        path,
        id: opened.id().to_owned(),
        other: "the built-in provider".to_owned(),
    };
    insta::assert_snapshot!(redact(&error.to_string()));
}

#[test]
fn a_spec_contradicting_the_declared_id_is_refused() {
    let opened = plugboard_plugin::open(plugin("mislabelled")).expect("a valid declaration");
    assert_eq!(opened.id(), "microsoft-people");
    insta::assert_snapshot!(refusal(&plugin("mislabelled")));
}

#[test]
fn a_failing_constructor_fails_the_load_with_its_error() {
    insta::assert_snapshot!(refusal(&plugin("failing-new")));
}

#[test]
fn a_panicking_constructor_fails_the_load_and_the_host_goes_on() {
    insta::assert_snapshot!(refusal(&plugin("panicking-new")));
    let probe = plugboard_plugin::load(plugin("probe")).expect("the next plugin loads");
    assert_eq!(probe.spec().id, "probe");
}

/// `CORE_VERSION` is this crate's own version, which stands for plugboard-core's only while
/// both take the workspace's.
#[test]
fn the_declared_core_version_is_plugboard_cores() {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let output = std::process::Command::new(cargo)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let core = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "plugboard-core")
        .expect("plugboard-core is in the workspace");
    assert_eq!(core["version"], CORE_VERSION);
}
