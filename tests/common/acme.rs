//! pebble, a real ACME CA (Debian's), and pebble-challtestsrv as its DNS, on 127.0.0.1: every
//! name resolves to 127.0.0.1, so pebble checks HTTP-01 challenges against the test's nginx.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use super::run_ok;

/// The one name this pebble refuses to issue for (`rejectedIdentifier`).
pub const REFUSED: &str = "refused.example.test";

/// pebble and its DNS, stopped when dropped.
pub struct Pebble {
    children: Vec<Child>,
    /// The ACME directory URL.
    pub directory: String,
    /// The root pebble's own HTTPS is signed by (for `NUA_ACME_CA_BUNDLE`).
    pub tls_root: PathBuf,
    management: u16,
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn wait_for_port(port: u16) {
    let until = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < until,
            "nothing listens on 127.0.0.1:{port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Pebble {
    /// pebble on `base` (ACME), `base + 1` (its management), challtestsrv's DNS on
    /// `base + 2` and its management on `base + 3`; HTTP-01 checked on `http_port`. Its
    /// certificates live 30 s, so a test sees one renewed.
    pub fn start(dir: &Path, base: u16, http_port: u16) -> Pebble {
        std::fs::create_dir_all(dir).unwrap();
        // A CA for pebble's own HTTPS, and its certificate for 127.0.0.1.
        let ssl = |args: &[&str]| run_ok(Command::new("openssl").args(args).current_dir(dir));
        ssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=nua test CA",
        ]);
        ssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "req.csr",
            "-subj",
            "/CN=localhost",
        ]);
        std::fs::write(
            dir.join("ext.cnf"),
            "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n\
             subjectAltName=DNS:localhost,IP:127.0.0.1\n",
        )
        .unwrap();
        ssl(&[
            "x509",
            "-req",
            "-in",
            "req.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "cert.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ]);
        let config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{base}"),
            "managementListenAddress": format!("127.0.0.1:{}", base + 1),
            "certificate": dir.join("cert.pem"),
            "privateKey": dir.join("key.pem"),
            "httpPort": http_port,
            "tlsPort": 5001,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
            "certificateValidityPeriod": 30,
            "domainBlocklist": [REFUSED]
        }});
        std::fs::write(dir.join("pebble.json"), config.to_string()).unwrap();
        let dns = format!("127.0.0.1:{}", base + 2);
        // Their chatter goes to a log of the test's, not into the test output.
        let log = || {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("pebble.log"))
                .unwrap()
        };
        let challtestsrv = Command::new("pebble-challtestsrv")
            .args([
                "-defaultIPv4",
                "127.0.0.1",
                "-defaultIPv6",
                "",
                "-dns01",
                &dns,
            ])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("127.0.0.1:{}", base + 3)])
            .stdout(log())
            .stderr(log())
            .spawn()
            .unwrap();
        let pebble = Command::new("pebble")
            .arg("-config")
            .arg(dir.join("pebble.json"))
            .args(["-dnsserver", &dns])
            // Answer at once, and never pretend a challenge passed.
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_VA_ALWAYS_VALID", "0")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(log())
            .stderr(log())
            .spawn()
            .unwrap();
        let started = Pebble {
            children: vec![pebble, challtestsrv],
            directory: format!("https://127.0.0.1:{base}/dir"),
            tls_root: dir.join("ca.pem"),
            management: base + 1,
        };
        wait_for_port(base);
        wait_for_port(base + 1);
        started
    }

    /// The root pebble issues certificates under (it makes a new one each start).
    pub fn issuing_root(&self, out: &Path) -> PathBuf {
        run_ok(
            Command::new("curl")
                .args(["-sSf", "--cacert"])
                .arg(&self.tls_root)
                .arg(format!("https://127.0.0.1:{}/roots/0", self.management))
                .arg("-o")
                .arg(out),
        );
        out.to_owned()
    }
}
