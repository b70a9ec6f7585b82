//! Keys the original Nua accepted in a place or under a name it then silently ignored. Each
//! is moved to where it belongs, with a warning saying so; `--strict` turns the warnings into
//! errors. Keys whose meaning changed (`build-script`, `document-root`, …) are not moved:
//! `validate` rejects them with a hint.
//!
//! | written | moved to |
//! |---|---|
//! | `[metadata] license, src-url, src-checksum, git-url, git-branch` | `[build]` |
//! | `[metadata] licence`, `checksum`, `image` (names the original code also read) | `[build] license`, `src-checksum`, `base-image` |
//! | `base-image` in `[[provider]]` | `[provider.build] base-image` |
//! | volume `prefix` | volume `name` |
//! | `ports` (plural), top level or in a provider | `port` |
//!
//! Two values the original read in its own way are read the same way, with a warning: an
//! empty `src-checksum = ""` means none was given (the download is then not verified), and
//! a volume `type = "volume"` (Docker's name) means `managed`.

use super::error::{Pos, Problem};
use super::parse::{Entry, Kind, Node};

/// Keys of `[metadata]` that belong in `[build]`: as written, and their name there.
const METADATA_TO_BUILD: &[(&str, &str)] = &[
    ("license", "license"),
    ("licence", "license"),
    ("src-url", "src-url"),
    ("src-checksum", "src-checksum"),
    ("checksum", "src-checksum"),
    ("git-url", "git-url"),
    ("git-branch", "git-branch"),
    ("image", "base-image"),
];

/// Apply the moves to the whole tree; warnings for each move, problems when the new place is
/// already taken (which of the two values is meant is unclear).
pub(crate) fn apply(root: &mut Node) -> (Vec<(Pos, String)>, Vec<Problem>) {
    let mut moves = Moves::default();
    if root.entries().is_none() {
        return (moves.warnings, moves.problems);
    }
    moves.metadata_to_build(root);
    moves.empty_checksum(root);
    moves.rename(root, "ports", "port", "");
    for_each_item(root, "volume", |vol, i| {
        let place = format!("volume[{i}]");
        moves.rename(vol, "prefix", "name", &place);
        moves.docker_volume_type(vol, &place);
    });
    if let Some(Entry {
        value: Node {
            kind: Kind::Array(providers),
            ..
        },
        ..
    }) = root.get_mut("provider")
    {
        for (i, provider) in providers.iter_mut().enumerate() {
            if provider.entries().is_none() {
                continue;
            }
            let place = format!("provider[{i}]");
            let name = provider.get("name").map(|e| e.value.to_json());
            let label = match name.as_ref().and_then(|n| n.as_str()) {
                Some(n) => format!("[[provider]] `{n}`"),
                None => format!("[[provider]] #{}", i + 1),
            };
            moves.rename(provider, "ports", "port", &place);
            if let Some(entry) = provider.take("base-image") {
                moves.move_into(
                    provider,
                    entry,
                    "base-image",
                    "build",
                    "[provider.build]",
                    &label,
                );
            }
            for_each_item(provider, "volume", |vol, j| {
                let place = format!("{place}.volume[{j}]");
                moves.rename(vol, "prefix", "name", &place);
                moves.docker_volume_type(vol, &place);
            });
        }
    }
    (moves.warnings, moves.problems)
}

/// A volume written as a Docker mount (in a deploy file): `type = "volume"` read as
/// `managed`, `source` as `name`, the default `mode = "rw"` dropped; another `mode` is a
/// problem. Warnings and problems name the volume by `place`.
pub(crate) fn docker_volume(vol: &mut Node, place: &str) -> (Vec<(Pos, String)>, Vec<Problem>) {
    let mut moves = Moves::default();
    moves.docker_volume_type(vol, place);
    if vol.get("source").is_some() {
        let pos = vol.get("source").expect("checked").pos;
        if vol.get("name").is_some() {
            moves.problems.push(
                Problem::new(
                    pos,
                    format!("`source` in `{place}` and `name` name the same volume"),
                )
                .with_hint("keep only `name`"),
            );
        } else {
            vol.get_mut("source").expect("checked").key = "name".to_owned();
            moves.warnings.push((
                pos,
                format!("`source` in `{place}` is Docker's spelling of `name`; read as `name`"),
            ));
        }
    }
    if let Some(entry) = vol.take("mode") {
        match &entry.value.kind {
            Kind::Str(mode) if mode == "rw" => moves.warnings.push((
                entry.pos,
                format!("`mode = \"rw\"` in `{place}` is the default; dropped"),
            )),
            _ => moves.problems.push(
                Problem::new(
                    entry.value.pos,
                    format!(
                        "`mode = {}` in `{place}`: volumes are mounted read-write",
                        entry.value.to_json()
                    ),
                )
                .with_hint("remove `mode`; a read-only mount is not supported yet"),
            ),
        }
    }
    (moves.warnings, moves.problems)
}

fn for_each_item(node: &mut Node, key: &str, mut f: impl FnMut(&mut Node, usize)) {
    if let Some(Entry {
        value: Node {
            kind: Kind::Array(items),
            ..
        },
        ..
    }) = node.get_mut(key)
    {
        for (i, item) in items.iter_mut().enumerate() {
            if item.entries().is_some() {
                f(item, i);
            }
        }
    }
}

#[derive(Default)]
struct Moves {
    warnings: Vec<(Pos, String)>,
    problems: Vec<Problem>,
}

impl Moves {
    fn metadata_to_build(&mut self, root: &mut Node) {
        let Some(meta) = root.get_mut("metadata").map(|e| &mut e.value) else {
            return;
        };
        if meta.entries().is_none() {
            return;
        }
        let mut taken = Vec::new();
        for (key, new) in METADATA_TO_BUILD {
            // The original also read these with `_` (`src_url`).
            let found = [key.to_string(), key.replace('-', "_")]
                .into_iter()
                .find(|k| meta.get(k).is_some());
            if let Some(k) = found {
                taken.push((meta.take(&k).expect("found above"), *new));
            }
        }
        for (entry, new) in taken {
            self.move_into(root, entry, new, "build", "[build]", "[metadata]");
        }
    }

    /// `[build] src-checksum = ""`: the original took an empty checksum for none.
    fn empty_checksum(&mut self, root: &mut Node) {
        let Some(build) = root.get_mut("build").map(|e| &mut e.value) else {
            return;
        };
        let empty = matches!(
            build.get("src-checksum").map(|e| &e.value.kind),
            Some(Kind::Str(s)) if s.trim().is_empty()
        );
        if let Some(entry) = empty.then(|| build.take("src-checksum")).flatten() {
            self.warnings.push((
                entry.pos,
                "`build.src-checksum` is empty: read as not given, so the `src-url` download \
                 is not verified (give its SHA-256 to verify it)"
                    .to_owned(),
            ));
        }
    }

    /// A volume `type = "volume"`: Docker's name for what nua-config calls `managed`.
    fn docker_volume_type(&mut self, vol: &mut Node, place: &str) {
        let Some(entry) = vol.get_mut("type") else {
            return;
        };
        if let Kind::Str(kind) = &mut entry.value.kind {
            if kind == "volume" {
                *kind = "managed".to_owned();
                self.warnings.push((
                    entry.value.pos,
                    format!(
                        "volume type `volume` in `{place}` is Docker's name for `managed`; \
                         read as `managed`"
                    ),
                ));
            }
        }
    }

    /// Rename `old` to `new` inside `table`.
    fn rename(&mut self, table: &mut Node, old: &str, new: &str, place: &str) {
        let Some(entry) = table.get(old) else { return };
        let pos = entry.pos;
        let at = if place.is_empty() {
            String::new()
        } else {
            format!(" in `{place}`")
        };
        if table.get(new).is_some() {
            self.problems.push(
                Problem::new(
                    pos,
                    format!("`{old}`{at} is the old name of `{new}`, and `{new}` is also given"),
                )
                .with_hint(format!("keep only `{new}`")),
            );
            return;
        }
        let entry = table.get_mut(old).expect("checked above");
        entry.key = new.to_string();
        self.warnings.push((
            pos,
            format!("`{old}`{at} is now spelled `{new}`; read as `{new}`"),
        ));
    }

    /// Move `entry`, taken out of `table`, into its sub-table `sub` (created if needed).
    /// `target` and `place` name the new and old places in messages.
    fn move_into(
        &mut self,
        table: &mut Node,
        entry: Entry,
        key: &str,
        sub: &str,
        target: &str,
        place: &str,
    ) {
        let pos = entry.pos;
        let key = key.to_string();
        if table.get(sub).is_none() {
            let entries = table.entries_mut().expect("a table");
            entries.push(Entry {
                key: sub.to_string(),
                pos,
                value: Node::table(Vec::new(), pos),
            });
        }
        let sub_node = &mut table.get_mut(sub).expect("inserted above").value;
        let Some(sub_entries) = sub_node.entries_mut() else {
            return;
        };
        if sub_entries.iter().any(|e| e.key == key) {
            self.problems.push(
                Problem::new(pos, format!("`{key}` is given in {place} and in {target}"))
                    .with_hint(format!("keep only the one in {target}")),
            );
            return;
        }
        let renamed = if key == entry.key {
            String::new()
        } else {
            format!(" as `{key}`")
        };
        self.warnings.push((
            pos,
            format!(
                "`{}` belongs in {target}, not {place}; moved there{renamed}",
                entry.key
            ),
        ));
        sub_entries.push(Entry {
            key,
            pos,
            value: entry.value,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{parse, Format};
    use rstest::rstest;

    #[rstest]
    #[case("[metadata]\nid = \"a\"\nlicense = \"MIT\"\n", &["build", "license"], "`license` belongs in [build], not [metadata]")]
    #[case("[metadata]\nsrc_url = \"u\"\n", &["build", "src-url"], "`src_url` belongs in [build]")]
    #[case("[[provider]]\nname = \"d\"\nbase-image = \"pg\"\n", &["provider", "0", "build", "base-image"], "`base-image` belongs in [provider.build], not [[provider]] `d`")]
    #[case("[[volume]]\nprefix = \"v\"\ntarget = \"/t\"\n", &["volume", "0", "name"], "`prefix` in `volume[0]` is now spelled `name`")]
    #[case("[metadata]\nimage = \"x:1\"\n", &["build", "base-image"], "`image` belongs in [build], not [metadata]; moved there as `base-image`")]
    #[case("[metadata]\nlicence = \"MIT\"\n", &["build", "license"], "as `license`")]
    #[case("[ports.web]\ncontainer = 80\n", &["port", "web", "container"], "`ports` is now spelled `port`")]
    fn legacy_keys_move_with_a_warning(
        #[case] text: &str,
        #[case] to: &[&str],
        #[case] warning: &str,
    ) {
        let mut tree = parse(text, Format::Toml).unwrap();
        let (warnings, problems) = apply(&mut tree);
        assert!(problems.is_empty(), "{problems:?}");
        let mut json = tree.to_json();
        for seg in to {
            json = match seg.parse::<usize>() {
                Ok(i) => json[i].clone(),
                Err(_) => json[*seg].clone(),
            };
        }
        assert!(!json.is_null(), "nothing at {to:?}: {}", tree.to_json());
        assert!(
            warnings.iter().any(|(_, w)| w.contains(warning)),
            "{warnings:?}"
        );
    }

    #[test]
    fn a_key_in_both_places_is_an_error() {
        let mut tree = parse(
            "[metadata]\nlicense = \"MIT\"\n[build]\nlicense = \"GPL\"\n",
            Format::Toml,
        )
        .unwrap();
        let (_, problems) = apply(&mut tree);
        assert_eq!(problems.len(), 1);
        assert_eq!((problems[0].line, problems[0].col), (2, 1));
    }

    #[rstest]
    #[case("[build]\nsrc-checksum = \"\"\n", "src-checksum")]
    #[case("[metadata]\nsrc-checksum = \" \"\n", "src-checksum")]
    fn an_empty_checksum_is_none_with_a_warning(#[case] text: &str, #[case] key: &str) {
        let mut tree = parse(text, Format::Toml).unwrap();
        let (warnings, problems) = apply(&mut tree);
        assert!(problems.is_empty(), "{problems:?}");
        assert!(
            tree.to_json()["build"].get(key).is_none(),
            "{}",
            tree.to_json()
        );
        assert!(
            warnings.iter().any(|(_, w)| w.contains("not verified")),
            "{warnings:?}"
        );
    }

    #[test]
    fn a_docker_volume_type_is_read_as_managed() {
        let text = "[[volume]]\ntype = \"volume\"\nname = \"v\"\ntarget = \"/t\"\n\
                    [[provider]]\nname = \"db\"\n[[provider.volume]]\ntype = \"volume\"\n\
                    name = \"d\"\ntarget = \"/d\"\n[[volume]]\ntype = \"bind\"\n";
        let mut tree = parse(text, Format::Toml).unwrap();
        let (warnings, _) = apply(&mut tree);
        let json = tree.to_json();
        assert_eq!(json["volume"][0]["type"], "managed");
        assert_eq!(json["provider"][0]["volume"][0]["type"], "managed");
        assert_eq!(json["volume"][1]["type"], "bind");
        let said: Vec<&str> = warnings.iter().map(|(_, w)| w.as_str()).collect();
        assert_eq!(
            said,
            [
                "volume type `volume` in `volume[0]` is Docker's name for `managed`; read as \
                 `managed`",
                "volume type `volume` in `provider[0].volume[0]` is Docker's name for \
                 `managed`; read as `managed`",
            ]
        );
    }
}
