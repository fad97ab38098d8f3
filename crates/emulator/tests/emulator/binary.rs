//! The `plugboard-emulator` binary, as `plugboard dev` and separate-process tests run it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use plugboard_emulator::{ControlClient, DemoSetup};

use crate::harness::REDIRECT_URI;

#[tokio::test]
async fn prints_its_url_and_the_demo_setup_then_serves() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_plugboard-emulator"))
        .args(["--port", "0", "--demo", "--redirect-uri", REDIRECT_URI])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = lines.next().unwrap().unwrap();
    let setup: DemoSetup = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();

    let control = ControlClient::new(&url);
    let apps = control.apps().await.unwrap();
    assert_eq!(apps[0].client_id, setup.client_id);
    assert_eq!(apps[0].redirect_uris, [REDIRECT_URI]);
    assert_eq!(control.users().await.unwrap()[0].people, 200);
    assert!(setup.tenant_domain.ends_with(".onmicrosoft.com"));
    child.kill().unwrap();
    child.wait().unwrap();
}
