//! Credentials against the real registry with basic auth: `--password-stdin`, Docker's
//! `config.json` (`auths`, a `credsStore` helper), and wrong or failing ones, whose errors
//! name the registry and the source tried but never the password.

use super::*;

#[test]
fn basic_auth_with_password_stdin_and_docker_config_and_wrong_credentials() {
    let registry = Registry::start(Auth::basic("alice", "s3cret-pw"));
    let work = temp_dir();
    let tarball = image_tarball(work.path(), "auth", &[("a.txt", b"auth".to_vec())]);
    let cache = work.path().join("cache");
    let target = format!("{}/auth/app:1", registry.host());
    let push = |extra: &[&str], password: &str| {
        let cmd = &mut pack(&cache);
        cmd.arg("push")
            .arg(&tarball)
            .args([&target, "-q", "--insecure-registry", &registry.host()])
            .args(extra);
        with_stdin(cmd, password)
    };
    // No credentials at all.
    let out = push(&[], "");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("requires authentication"), "{stderr}");

    let out = push(&["--username", "alice", "--password-stdin"], "s3cret-pw\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = push(&["--username", "alice", "--password-stdin"], "wrong-pw\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains(&registry.host()), "{stderr}");
    assert!(stderr.contains("--password-stdin"), "{stderr}");
    assert!(!stderr.contains("wrong-pw"), "{stderr}");

    // The same through a Docker config folder.
    let config = cache.join("docker-config");
    std::fs::create_dir_all(&config).unwrap();
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret-pw");
    let body = format!(
        r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#,
        registry.host()
    );
    std::fs::write(config.join("config.json"), body).unwrap();
    let pulled = pull_json(&registry.host(), &mut pack(&cache), &target, &[]);
    assert!(pulled["digest"].is_string());

    // And through a `credsStore` helper on `PATH` (docker-credential-helpers' protocol:
    // the server URL on stdin, JSON on stdout).
    let bin = work.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-nuatest");
    let script = format!(
        "#!/bin/sh\nread server\necho \"$server\" >> {}\necho '{{\"ServerURL\":\"'$server'\",\"Username\":\"alice\",\"Secret\":\"s3cret-pw\"}}'\n",
        work.path().join("helper.log").display()
    );
    std::fs::write(&helper, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(config.join("config.json"), r#"{"credsStore":"nuatest"}"#).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let fresh = work.path().join("cache2");
    let cmd = &mut pack(&fresh);
    let pulled = pull_json(
        &registry.host(),
        cmd.env("DOCKER_CONFIG", &config).env("PATH", path),
        &target,
        &[],
    );
    assert!(pulled["downloaded"].as_u64().unwrap() > 0);
    let asked = std::fs::read_to_string(work.path().join("helper.log")).unwrap();
    assert_eq!(asked.trim(), registry.host());

    // The same helper named for this registry alone (`credHelpers`).
    std::fs::write(
        config.join("config.json"),
        format!(r#"{{"credHelpers":{{"{}":"nuatest"}}}}"#, registry.host()),
    )
    .unwrap();
    let cmd = &mut pack(&work.path().join("cache-helpers"));
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let pulled = pull_json(
        &registry.host(),
        cmd.env("DOCKER_CONFIG", &config).env("PATH", path),
        &target,
        &[],
    );
    assert!(pulled["digest"].is_string());

    // A helper that fails for another reason than "not found" is an error saying so.
    std::fs::write(
        &helper,
        "#!/bin/sh
echo 'the keychain is locked' >&2
exit 1
",
    )
    .unwrap();
    let out = run(pack(&work.path().join("cache3"))
        .env("DOCKER_CONFIG", &config)
        .env(
            "PATH",
            format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
        )
        .args(["pull", &target, "--insecure-registry", &registry.host()]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("docker-credential-nuatest get") && stderr.contains("keychain is locked"),
        "{stderr}"
    );
}
