//! The `[config]` table of a layer recipe: how a container of the image runs (entry point,
//! command, user, ports, volumes, stop signal, Docker's health check), and the `[[files]]`
//! a recipe copies into the image. Provider images (`postgres-15`, …) need both; app
//! builders need neither.
//!
//! Pure: parsing, checking and merging; the files are written by the layer's commands (see
//! [`LayerFile::command`]) so that they count in the step's cache key.

use std::collections::BTreeSet;

use serde::Deserialize;

use nua_oci as oci;

/// `[config]`: the image config of every image built on the layer; a later layer's value
/// replaces an earlier one's, `expose` and `volumes` add up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ImageSettings {
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    /// `name`, `uid` or `uid:gid`.
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub workdir: Option<String>,
    /// `5432` or `5432/tcp` (`udp`, `sctp`).
    #[serde(default)]
    pub expose: Vec<String>,
    /// Absolute paths.
    #[serde(default)]
    pub volumes: Vec<String>,
    /// `SIGINT`, `SIGTERM`, …
    #[serde(default)]
    pub stop_signal: Option<String>,
    #[serde(default)]
    pub healthcheck: Option<HealthcheckDef>,
}

/// `[config.healthcheck]`: Docker's `HEALTHCHECK`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HealthcheckDef {
    /// `["CMD", "pg_isready"]`, `["CMD-SHELL", "…"]` or `["NONE"]`.
    pub test: Vec<String>,
    /// Durations as Docker writes them: `500ms`, `10s`, `2m`, `1h`.
    #[serde(default)]
    pub interval: Option<String>,
    #[serde(default)]
    pub timeout: Option<String>,
    #[serde(default)]
    pub start_period: Option<String>,
    #[serde(default)]
    pub retries: Option<u32>,
}

/// `[[files]]`: a file kept under `layers/`, written into the image before the layer's
/// `before` commands and its packages' maintainer scripts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LayerFile {
    /// Where in the image (absolute).
    pub path: String,
    /// The file, relative to `layers/` (`postgres/docker-entrypoint.sh`).
    pub source: String,
    /// Octal permission bits; default `0644`. The file belongs to root.
    #[serde(default = "default_mode")]
    pub mode: String,
}

fn default_mode() -> String {
    "0644".to_owned()
}

impl LayerFile {
    /// What is wrong with it, as `key: problem`.
    pub fn check(&self) -> Result<(), String> {
        if !self.path.starts_with('/') || self.path.split('/').any(|c| c == "..") {
            return Err(format!(
                "`files.path`: `{}` is not an absolute path",
                self.path
            ));
        }
        if self.source.starts_with('/') || self.source.split('/').any(|c| c == "..") {
            return Err(format!(
                "`files.source`: `{}` is not a path inside `layers/`",
                self.source
            ));
        }
        self.mode_bits()?;
        Ok(())
    }

    fn mode_bits(&self) -> Result<u32, String> {
        u32::from_str_radix(&self.mode, 8)
            .ok()
            .filter(|m| *m <= 0o7777)
            .ok_or_else(|| format!("`files.mode`: `{}` is not an octal mode", self.mode))
    }

    /// The shell command that writes `content` at its path: base64 keeps any byte exact.
    pub fn command(&self, content: &[u8]) -> String {
        let dir = self.path.rsplit_once('/').map_or("/", |(d, _)| d);
        let dir = if dir.is_empty() { "/" } else { dir };
        format!(
            "mkdir -p '{dir}' && printf '%s' '{}' | base64 -d > '{path}' && chmod {mode:o} '{path}'",
            base64(content),
            path = self.path,
            mode = self.mode_bits().expect("checked when the recipe was read"),
        )
    }
}

/// Standard base64 with padding (what `base64 -d` of coreutils reads).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `500ms`, `10s`, `2m`, `1h` in nanoseconds.
fn parse_duration(text: &str) -> Option<u64> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let nanos = match unit {
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    };
    number.checked_mul(nanos)
}

impl ImageSettings {
    /// What is wrong with it, as `key: problem`.
    pub fn check(&self) -> Result<(), String> {
        for port in &self.expose {
            exposed_port(port)?;
        }
        for volume in &self.volumes {
            if !volume.starts_with('/') {
                return Err(format!(
                    "`config.volumes`: `{volume}` is not an absolute path"
                ));
            }
        }
        if let Some(check) = &self.healthcheck {
            check.to_oci()?;
        }
        Ok(())
    }

    /// `upper` laid over `self`: its values replace, its ports and volumes add.
    pub fn overlay(&mut self, upper: &ImageSettings) {
        fn replace<T: Clone>(mine: &mut Option<T>, theirs: &Option<T>) {
            if theirs.is_some() {
                mine.clone_from(theirs);
            }
        }
        replace(&mut self.entrypoint, &upper.entrypoint);
        replace(&mut self.cmd, &upper.cmd);
        replace(&mut self.user, &upper.user);
        replace(&mut self.workdir, &upper.workdir);
        replace(&mut self.stop_signal, &upper.stop_signal);
        if upper.healthcheck.is_some() {
            self.healthcheck.clone_from(&upper.healthcheck);
        }
        self.expose.extend(upper.expose.iter().cloned());
        self.volumes.extend(upper.volumes.iter().cloned());
    }

    /// The container config of an image with these settings and `env`; with neither an
    /// entry point nor a command, `/bin/bash` (what a plain base runs).
    pub fn container_config(&self, env: Vec<String>) -> oci::ContainerConfig {
        let cmd = match (&self.entrypoint, &self.cmd) {
            (None, None) => Some(vec!["/bin/bash".to_owned()]),
            (_, cmd) => cmd.clone(),
        };
        let set = |items: &[String], f: fn(&str) -> String| {
            items
                .iter()
                .map(|i| (f(i), oci::image::Empty::default()))
                .collect::<std::collections::BTreeMap<_, _>>()
        };
        oci::ContainerConfig {
            user: self.user.clone(),
            exposed_ports: set(&self.expose, |p| exposed_port(p).expect("checked")),
            env,
            entrypoint: self.entrypoint.clone(),
            cmd,
            volumes: set(&self.volumes, str::to_owned),
            working_dir: self.workdir.clone(),
            stop_signal: self.stop_signal.clone(),
            healthcheck: self
                .healthcheck
                .as_ref()
                .map(|h| h.to_oci().expect("checked")),
            ..oci::ContainerConfig::default()
        }
    }
}

/// `5432` → `5432/tcp`; `53/udp` stays.
fn exposed_port(port: &str) -> Result<String, String> {
    let (number, protocol) = port.split_once('/').unwrap_or((port, "tcp"));
    let protocols: BTreeSet<&str> = ["tcp", "udp", "sctp"].into();
    match number.parse::<u16>() {
        Ok(n) if n > 0 && protocols.contains(protocol) => Ok(format!("{n}/{protocol}")),
        _ => Err(format!(
            "`config.expose`: `{port}` is not a port (`5432` or `5432/tcp`)"
        )),
    }
}

impl HealthcheckDef {
    fn to_oci(&self) -> Result<oci::Healthcheck, String> {
        match self.test.first().map(String::as_str) {
            Some("NONE") if self.test.len() == 1 => {}
            Some("CMD" | "CMD-SHELL") if self.test.len() > 1 => {}
            _ => {
                return Err(format!(
                    "`config.healthcheck.test`: {:?} is not `[\"CMD\", …]`, \
                     `[\"CMD-SHELL\", \"…\"]` or `[\"NONE\"]`",
                    self.test
                ))
            }
        }
        let duration = |key: &str, value: &Option<String>| {
            value
                .as_deref()
                .map(|v| {
                    parse_duration(v).ok_or_else(|| {
                        format!(
                            "`config.healthcheck.{key}`: `{v}` is not a duration \
                             (`500ms`, `10s`, `2m`, `1h`)"
                        )
                    })
                })
                .transpose()
        };
        Ok(oci::Healthcheck {
            test: self.test.clone(),
            interval: duration("interval", &self.interval)?,
            timeout: duration("timeout", &self.timeout)?,
            start_period: duration("start-period", &self.start_period)?,
            retries: self.retries,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_coreutils() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"#!/bin/sh\n"), "IyEvYmluL3NoCg==");
    }

    #[test]
    fn a_file_is_written_with_its_mode() {
        let file = LayerFile {
            path: "/usr/local/bin/x".into(),
            source: "p/x".into(),
            mode: "0755".into(),
        };
        file.check().unwrap();
        assert_eq!(
            file.command(b"foo"),
            "mkdir -p '/usr/local/bin' && printf '%s' 'Zm9v' | base64 -d > '/usr/local/bin/x' \
             && chmod 755 '/usr/local/bin/x'"
        );
        let bad = LayerFile {
            mode: "0899".into(),
            ..file.clone()
        };
        assert!(bad.check().unwrap_err().contains("`files.mode`"));
        let bad = LayerFile {
            source: "../etc/shadow".into(),
            ..file
        };
        assert!(bad.check().unwrap_err().contains("`files.source`"));
    }

    #[test]
    fn settings_become_docker_config() {
        let settings: ImageSettings = toml::from_str(
            r#"
            entrypoint = ["docker-entrypoint.sh"]
            cmd = ["postgres"]
            expose = ["5432"]
            volumes = ["/var/lib/postgresql/data"]
            stop-signal = "SIGINT"
            [healthcheck]
            test = ["CMD", "pg_isready"]
            interval = "10s"
            start-period = "500ms"
            retries = 3
            "#,
        )
        .unwrap();
        settings.check().unwrap();
        let config = settings.container_config(vec!["A=b".into()]);
        let json = serde_json::to_value(&config).unwrap();
        assert_eq!(json["ExposedPorts"], serde_json::json!({"5432/tcp": {}}));
        assert_eq!(json["StopSignal"], "SIGINT");
        assert_eq!(json["Cmd"], serde_json::json!(["postgres"]));
        assert_eq!(json["Healthcheck"]["Interval"], 10_000_000_000u64);
        assert_eq!(json["Healthcheck"]["StartPeriod"], 500_000_000u64);
        assert_eq!(json["Healthcheck"]["Retries"], 3);
        assert_eq!(
            ImageSettings::default().container_config(vec![]).cmd,
            Some(vec!["/bin/bash".to_owned()])
        );
    }

    #[test]
    fn bad_settings_name_their_key() {
        let bad = |text: &str| {
            let settings: ImageSettings = toml::from_str(text).unwrap();
            settings.check().unwrap_err()
        };
        assert!(bad("expose = [\"http\"]").contains("`config.expose`"));
        assert!(bad("volumes = [\"data\"]").contains("`config.volumes`"));
        assert!(bad("[healthcheck]\ntest = [\"pg_isready\"]").contains("`config.healthcheck.test`"));
        assert!(
            bad("[healthcheck]\ntest = [\"CMD\", \"x\"]\ninterval = \"10\"")
                .contains("`config.healthcheck.interval`")
        );
        let unknown = toml::from_str::<ImageSettings>("stopsignal = \"SIGINT\"")
            .unwrap_err()
            .to_string();
        assert!(unknown.contains("stopsignal"), "{unknown}");
    }
}
