//! The dpkg database written with unpacked packages (dpkg(1) "FILES", deb-control(5)):
//! one status stanza per package in state `install ok unpacked`, the `info/` files, and for
//! a fresh root the empty files and folders dpkg expects under `/var/lib/dpkg`.

use std::collections::BTreeMap;

use super::deb822::{self, Paragraph};
use super::error::Result;

/// The order dpkg writes the fields of a status stanza; other fields follow as they came.
const FIELD_ORDER: &[&str] = &[
    "Package",
    "Essential",
    "Protected",
    "Status",
    "Priority",
    "Section",
    "Installed-Size",
    "Origin",
    "Maintainer",
    "Bugs",
    "Architecture",
    "Multi-Arch",
    "Source",
    "Version",
    "Config-Version",
    "Replaces",
    "Provides",
    "Depends",
    "Pre-Depends",
    "Recommends",
    "Suggests",
    "Breaks",
    "Conflicts",
    "Enhances",
    "Conffiles",
    "Description",
    "Triggers-Pending",
    "Triggers-Awaited",
];

/// Control members that become `info/<pkg>.<name>` files, and whether they are executable.
pub fn info_mode(member: &str) -> Option<u32> {
    match member {
        "control" => None,
        "preinst" | "postinst" | "prerm" | "postrm" | "config" => Some(0o755),
        _ => Some(0o644),
    }
}

/// The name of a package in `info/`: `name:arch` for `Multi-Arch: same` packages.
pub fn info_key(control: &Paragraph) -> String {
    let name = control.get("Package").unwrap_or("");
    match (control.get("Multi-Arch"), control.get("Architecture")) {
        (Some("same"), Some(arch)) => format!("{name}:{arch}"),
        _ => name.to_owned(),
    }
}

/// The plain conffile paths of a `conffiles` member (flagged lines such as
/// `remove-on-upgrade` are not installed files and are skipped).
pub fn conffiles(member: Option<&[u8]>) -> Vec<String> {
    let text = member.map(String::from_utf8_lossy).unwrap_or_default();
    text.lines()
        .map(str::trim)
        .filter(|l| l.starts_with('/') && !l.contains(char::is_whitespace))
        .map(str::to_owned)
        .collect()
}

/// The status stanza of a freshly unpacked package, fields in dpkg's order.
pub fn unpacked_stanza(control: &Paragraph, conffiles: &[String]) -> Paragraph {
    let mut fields: BTreeMap<usize, (String, String)> = BTreeMap::new();
    let mut extra = Vec::new();
    let mut put = |name: &str, value: String, extra: &mut Vec<(String, String)>| match FIELD_ORDER
        .iter()
        .position(|f| f.eq_ignore_ascii_case(name))
    {
        Some(i) => {
            fields.insert(i, (FIELD_ORDER[i].to_owned(), value));
        }
        None => extra.push((name.to_owned(), value)),
    };
    for (name, value) in &control.fields {
        put(name, value.clone(), &mut extra);
    }
    put("Status", "install ok unpacked".to_owned(), &mut extra);
    if !conffiles.is_empty() {
        let lines: String = conffiles
            .iter()
            .map(|c| format!("\n {c} newconffile"))
            .collect();
        put("Conffiles", lines, &mut extra);
    }
    let mut fields: Vec<(String, String)> = fields.into_values().collect();
    fields.extend(extra);
    Paragraph { fields }
}

/// The whole status file: the stanzas already there plus the new ones, sorted by package
/// name as dpkg keeps it.
pub fn status_file(installed_status: Option<&[u8]>, new: Vec<Paragraph>) -> Result<String> {
    let mut all = match installed_status {
        Some(bytes) => {
            deb822::Reader::new(bytes, "/var/lib/dpkg/status").collect::<Result<Vec<_>>>()?
        }
        None => Vec::new(),
    };
    let new_names: Vec<String> = new.iter().map(info_key).collect();
    all.retain(|p| !new_names.contains(&info_key(p)));
    all.extend(new);
    all.sort_by(|a, b| {
        let key = |p: &Paragraph| (p.get("Package").unwrap_or("").to_owned(), info_key(p));
        key(a).cmp(&key(b))
    });
    let stanzas: Vec<String> = all.iter().map(Paragraph::to_text).collect();
    Ok(stanzas.join("\n"))
}

/// The `.list` file: `/.` then every path of the package as it names it, in tar order.
pub fn list_file(paths: &[String]) -> String {
    let mut out = String::from("/.\n");
    for p in paths {
        out.push('/');
        out.push_str(p);
        out.push('\n');
    }
    out
}

/// Files of an empty dpkg database (a fresh bootstrap), relative to the root.
pub fn skeleton_files(arch: &str) -> Vec<(String, Vec<u8>)> {
    let empty = [
        "available",
        "diversions",
        "statoverride",
        "triggers/Unincorp",
    ];
    let mut files: Vec<(String, Vec<u8>)> = empty
        .iter()
        .map(|f| (format!("var/lib/dpkg/{f}"), Vec::new()))
        .collect();
    files.push(("var/lib/dpkg/info/format".to_owned(), b"1\n".to_vec()));
    files.push((
        "var/lib/dpkg/arch".to_owned(),
        format!("{arch}\n").into_bytes(),
    ));
    files
}

/// Folders of an empty dpkg database, relative to the root.
pub const SKELETON_DIRS: &[&str] = &[
    "var/lib/dpkg/alternatives",
    "var/lib/dpkg/info",
    "var/lib/dpkg/triggers",
    "var/lib/dpkg/updates",
    "etc/apt/sources.list.d",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stanza_in_dpkg_order_with_conffiles() {
        let control = deb822::parse(
            "Package: base-files\nVersion: 12.4\nArchitecture: amd64\nEssential: yes\n\
             Maintainer: M\nHomepage: h\nDescription: d\n more\nPriority: required\n",
            "control",
        )
        .unwrap();
        let s = unpacked_stanza(&control[0], &["/etc/issue".to_owned()]).to_text();
        assert_eq!(
            s,
            "Package: base-files\nEssential: yes\nStatus: install ok unpacked\nPriority: required\n\
             Maintainer: M\nArchitecture: amd64\nVersion: 12.4\nConffiles:\n /etc/issue newconffile\n\
             Description: d\n more\nHomepage: h\n"
        );
    }

    #[test]
    fn status_merges_sorted_and_replaces() {
        let old = b"Package: zlib\nStatus: install ok installed\nVersion: 1\n\n\
                    Package: apt\nStatus: install ok installed\nVersion: 1\n";
        let new = deb822::parse(
            "Package: bash\nVersion: 5\n\nPackage: apt\nVersion: 2\n",
            "x",
        )
        .unwrap();
        let s = status_file(Some(old), new).unwrap();
        let names: Vec<&str> = s
            .lines()
            .filter_map(|l| l.strip_prefix("Package: "))
            .collect();
        assert_eq!(names, ["apt", "bash", "zlib"]);
        assert!(s.contains("Package: apt\nVersion: 2"), "{s}");
    }

    #[test]
    fn multi_arch_same_is_qualified() {
        let p = deb822::parse(
            "Package: libc6\nArchitecture: amd64\nMulti-Arch: same\n",
            "c",
        )
        .unwrap();
        assert_eq!(info_key(&p[0]), "libc6:amd64");
        assert_eq!(
            conffiles(Some(b"/etc/a\nremove-on-upgrade /etc/b\n")),
            ["/etc/a"]
        );
    }
}
