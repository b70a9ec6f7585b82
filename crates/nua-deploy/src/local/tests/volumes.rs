//! Volumes: managed, tmpfs, bind and directory mounts.

use super::*;

fn managed(name: &str, options: &[(&str, &str)], driver: Option<&str>) -> VolumeSpec {
    VolumeSpec {
        name: name.into(),
        driver: driver.map(Into::into),
        options: options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        labels: BTreeMap::from([(APP_LABEL.to_owned(), APP.to_owned())]),
    }
}

fn volume(name: &str, target: &str, read_only: bool) -> Mount {
    Mount::Volume {
        name: name.into(),
        target: target.into(),
        read_only,
    }
}

fn bind(source: &str, target: &str, read_only: bool) -> Mount {
    Mount::Bind {
        source: source.into(),
        target: target.into(),
        read_only,
    }
}

fn tmpfs(target: &str, size_bytes: Option<i64>, mode: Option<i64>) -> Mount {
    Mount::Tmpfs {
        target: target.into(),
        size_bytes,
        mode,
    }
}

const GIB: i64 = 1024 * 1024 * 1024;
const MIB: i64 = 1024 * 1024;

#[rstest]
#[case::managed_named(
    "[[volume]]\nname = \"data\"\ntarget = \"/data\"\n",
    &[volume("app_data", "/data", false)],
    &[managed("app_data", &[], None)],
    &[]
)]
#[case::managed_typed(
    "[[volume]]\nname = \"data\"\ntype = \"managed\"\ntarget = \"/data\"\n",
    &[volume("app_data", "/data", false)],
    &[managed("app_data", &[], None)],
    &[]
)]
#[case::managed_unnamed(
    "[[volume]]\ntarget = \"/var/lib/my-app/\"\n",
    &[volume("app_var_lib_my_app", "/var/lib/my-app/", false)],
    &[managed("app_var_lib_my_app", &[], None)],
    &[]
)]
#[case::managed_with_driver_and_options(
    "[[volume]]\nname = \"remote\"\ntarget = \"/remote\"\ndriver = \"sshfs\"\n[volume.options]\nIdentityFile = \"/k\"\nport = 22\nread-only = true\n",
    &[volume("app_remote", "/remote", true)],
    &[managed("app_remote", &[("IdentityFile", "/k"), ("port", "22")], Some("sshfs"))],
    &[]
)]
#[case::read_only_as_a_string(
    "[[volume]]\nname = \"data\"\ntarget = \"/data\"\noptions = { read_only = \"true\" }\n",
    &[volume("app_data", "/data", true)],
    &[managed("app_data", &[], None)],
    &[]
)]
#[case::tmpfs_typed(
    "[[volume]]\ntype = \"tmpfs\"\ntarget = \"/cache\"\n",
    &[tmpfs("/cache", None, None)],
    &[],
    &[]
)]
#[case::tmpfs_size_and_mode(
    "[[volume]]\ntype = \"tmpfs\"\ntarget = \"/cache\"\noptions = { tmpfs_size = \"16m\", tmpfs_mode = 0o1777 }\n",
    &[tmpfs("/cache", Some(16 * MIB), Some(0o1777))],
    &[],
    &[]
)]
#[case::tmpfs_mode_as_octal_text(
    "[[volume]]\ntype = \"tmpfs\"\ntarget = \"/cache\"\noptions = { size = \"10G\", mode = \"1777\" }\n",
    &[tmpfs("/cache", Some(10 * GIB), Some(1023))],
    &[],
    &[]
)]
#[case::tmpfs_mode_as_0o_text(
    "[[volume]]\ntype = \"tmpfs\"\ntarget = \"/cache\"\noptions = { tmpfs-size = 1048576, tmpfs-mode = \"0o700\" }\n",
    &[tmpfs("/cache", Some(MIB), Some(0o700))],
    &[],
    &[]
)]
#[case::directory(
    "[[volume]]\ntype = \"directory\"\nname = \"/srv/nua-test-not-created\"\ntarget = \"/data\"\n",
    &[bind("/srv/nua-test-not-created", "/data", false)],
    &[],
    &["/srv/nua-test-not-created"]
)]
#[case::bind(
    "[[volume]]\ntype = \"bind\"\nname = \"/\"\ntarget = \"/host\"\noptions = { read-only = true }\n",
    &[bind("/", "/host", true)],
    &[],
    &[]
)]
#[case::every_kind_in_order(
    "[[volume]]\nname = \"data\"\ntarget = \"/data\"\n\
     [[volume]]\ntype = \"tmpfs\"\ntarget = \"/tmp\"\n\
     [[volume]]\ntype = \"directory\"\nname = \"/srv/d\"\ntarget = \"/d\"\n\
     [[volume]]\ntype = \"bind\"\nname = \"/\"\ntarget = \"/b\"\n\
     [[volume]]\nname = \"logs\"\ntarget = \"/logs\"\n",
    &[
        volume("app_data", "/data", false),
        tmpfs("/tmp", None, None),
        bind("/srv/d", "/d", false),
        bind("/", "/b", false),
        volume("app_logs", "/logs", false),
    ],
    &[managed("app_data", &[], None), managed("app_logs", &[], None)],
    &["/srv/d"]
)]
fn volumes(
    #[case] extra: &str,
    #[case] mounts: &[Mount],
    #[case] specs: &[VolumeSpec],
    #[case] directories: &[&str],
) {
    let plan = plan(&request(Some(extra), &[], &[]), &Ports::free(), &[]).unwrap();
    assert_eq!(plan.spec.mounts, mounts);
    assert_eq!(plan.volumes, specs);
    let directories: Vec<PathBuf> = directories.iter().map(PathBuf::from).collect();
    assert_eq!(plan.directories, directories);
    assert!(plan.notes.is_empty(), "{:?}", plan.notes);
}

/// The original Nua's samples write a tmpfs without `type`, with `tmpfs_*` options.
#[test]
fn an_untyped_volume_with_tmpfs_options_is_a_tmpfs() {
    let extra = "[[volume]]\nname = \"tmpfs\"\ntarget = \"/var/tmp/mount_point\"\n\
                 [volume.options]\ntmpfs_size = \"10G\"\ntmpfs_mode = 0o1777\n";
    let plan = plan(&request(Some(extra), &[], &[]), &Ports::free(), &[]).unwrap();
    assert_eq!(
        plan.spec.mounts,
        [tmpfs("/var/tmp/mount_point", Some(10 * GIB), Some(1023))]
    );
    assert!(plan.volumes.is_empty(), "{:?}", plan.volumes);
}

/// The same volume as [`an_untyped_volume_with_tmpfs_options_is_a_tmpfs`], as `plan` gets it
/// when the config was not normalized (`type` absent).
#[test]
fn an_unnormalized_volume_with_tmpfs_options_is_a_tmpfs() {
    let extra = "[[volume]]\nname = \"tmpfs\"\ntarget = \"/var/tmp/mount_point\"\n\
                 [volume.options]\ntmpfs_size = \"10G\"\ntmpfs_mode = 0o1777\n";
    let mut request = request(Some(extra), &[], &[]);
    if let Some(config) = &mut request.config {
        config.volume[0].kind = None;
    }
    let plan = plan(&request, &Ports::free(), &[]).unwrap();
    assert_eq!(
        plan.spec.mounts,
        [tmpfs("/var/tmp/mount_point", Some(10 * GIB), Some(1023))]
    );
    assert!(plan.volumes.is_empty(), "{:?}", plan.volumes);
}

#[rstest]
#[case("\"ten\"", "ten")]
#[case("\"10x\"", "10x")]
#[case("\"G\"", "G")]
#[case("\"\"", "")]
#[case("\"-1\"", "-1")]
#[case("-1", "-1")]
fn a_bad_tmpfs_size_is_refused(#[case] written: &str, #[case] value: &str) {
    let extra = format!(
        "[[volume]]\ntype = \"tmpfs\"\ntarget = \"/cache\"\noptions = {{ tmpfs_size = {written} }}\n"
    );
    let err = plan(&request(Some(&extra), &[], &[]), &Ports::free(), &[]).unwrap_err();
    assert!(
        matches!(&err, Error::BadSize { target, option, value: v } if option == "tmpfs_size" && target == "/cache" && v == value),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "`tmpfs_size = \"{value}\"` of the volume `/cache` is not a size (like `64m` or `1G`)"
        )
    );
}

#[rstest]
#[case("10G", 10 * GIB)]
#[case("16m", 16 * MIB)]
#[case("64MB", 64 * MIB)]
#[case("512k", 512 * 1024)]
#[case("1048576", MIB)]
#[case("1.5g", 3 * GIB / 2)]
#[case(" 2 G ", 2 * GIB)]
#[case("1t", 1024 * GIB)]
#[case("0", 0)]
fn sizes(#[case] text: &str, #[case] bytes: i64) {
    assert_eq!(parse_size(text), Some(bytes));
}

#[test]
fn a_missing_bind_source_is_refused() {
    let missing = tempfile::tempdir().unwrap().path().join("gone");
    let extra = format!(
        "[[volume]]\ntype = \"bind\"\nname = \"{}\"\ntarget = \"/data\"\n",
        missing.display()
    );
    let err = plan(&request(Some(&extra), &[], &[]), &Ports::free(), &[]).unwrap_err();
    assert!(
        matches!(&err, Error::NoBindSource { path, target } if *path == missing && target == "/data"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "the host folder `{}` of the bind volume `/data` does not exist",
            missing.display()
        )
    );
}

#[test]
fn an_existing_bind_source_is_mounted() {
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "[[volume]]\ntype = \"bind\"\nname = \"{}\"\ntarget = \"/data\"\n",
        dir.path().display()
    );
    let plan = plan(&request(Some(&extra), &[], &[]), &Ports::free(), &[]).unwrap();
    assert_eq!(
        plan.spec.mounts,
        [Mount::Bind {
            source: dir.path().to_path_buf(),
            target: "/data".into(),
            read_only: false,
        }]
    );
    assert!(plan.directories.is_empty());
}
