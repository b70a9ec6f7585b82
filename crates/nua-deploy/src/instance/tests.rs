use std::path::Path;

use super::*;
use nua_config::{deploy, Format, LoadOptions};

const APP_CONFIG: &str = r#"
[metadata]
id = "notes"
version = "1.0"
release = 1

[run]
start = "notes"

[env]
DB_HOST = { from = "database", key = "hostname" }
MODE = "test"

[port.web]
container = 8000

[[volume]]
name = "uploads"
target = "/nua/app/uploads"

[[provider]]
name = "database"
module-name = "postgres"
module-version = ">=15, <16"
"#;

fn config() -> NuaConfig {
    nua_config::load_str(
        APP_CONFIG,
        Format::Toml,
        Path::new("nua-config.toml"),
        &LoadOptions::default(),
    )
    .unwrap()
    .0
}

fn sites(text: &str) -> Vec<Site> {
    deploy::load_deploy_str(text, Format::Toml, Path::new("deploy.toml"))
        .unwrap()
        .0
        .site
}

/// Ports held by others, by port.
struct Held(BTreeMap<u16, &'static str>);

impl TakenPorts for Held {
    fn holder(&self, port: u16) -> Option<String> {
        self.0.get(&port).map(|h| (*h).to_owned())
    }
}

fn provider_image(p: &Provider) -> Option<String> {
    (p.module_name.as_deref() == Some("postgres")).then(|| "nua-postgres-15:latest".to_owned())
}

fn placement(held: &Held) -> Placement<'_> {
    Placement {
        taken: held,
        range: PORT_RANGE,
        previous: None,
    }
}

fn plan_of(site: &Site, held: &Held) -> Result<Desired, Error> {
    plan(
        site,
        "nua-notes:1.0-1",
        &config(),
        &provider_image,
        &placement(held),
    )
}

#[test]
fn two_sites_of_one_app_share_nothing() {
    let sites = sites(
        "[[site]]\nimage = \"notes\"\ndomain = \"a.example.com\"\n\
         [[site]]\nimage = \"notes\"\ndomain = \"b.example.com\"\nlabel = \"notes-b\"\n",
    );
    let held = Held(BTreeMap::from([(8100, "another program")]));
    let a = plan_of(&sites[0], &held).unwrap();
    assert_eq!(a.label, "notes-a-example-com");
    assert_eq!(a.network, "nua-notes-a-example-com");
    let names: Vec<(&str, Role)> = a
        .containers
        .iter()
        .map(|c| (c.name.as_str(), c.role))
        .collect();
    assert_eq!(
        names,
        [
            ("nua-notes-a-example-com-database", Role::Provider),
            ("nua-notes-a-example-com", Role::App),
        ]
    );
    let app = &a.containers[1];
    assert_eq!(app.ports[0].host, Some(8101), "8100 is held");
    assert_eq!(
        app.volumes[0].name.as_deref(),
        Some("nua-notes-a-example-com-uploads")
    );
    let db = &a.containers[0];
    assert_eq!(db.image, "nua-postgres-15:latest");
    assert!(
        db.ports.iter().all(|p| p.host.is_none()),
        "providers are never published"
    );
    assert!(
        db.env.contains_key("POSTGRES_PASSWORD"),
        "the module's env: {:?}",
        db.env
    );
    assert_eq!(
        db.volumes[0].name.as_deref(),
        Some("nua-notes-a-example-com-postgres-data")
    );

    let b = plan_of(&sites[1], &held).unwrap();
    assert_eq!(b.containers[1].name, "nua-notes-b");
    assert_eq!(
        b.containers[0].volumes[0].name.as_deref(),
        Some("nua-notes-b-postgres-data")
    );
}

#[test]
fn a_site_overrides_env_ports_volumes_and_providers() {
    let site = &sites(
        "[[site]]\nimage = \"notes\"\nlabel = \"n\"\nenv = { MODE = \"prod\" }\n\
         network = \"shared-net\"\n\
         [site.port.web]\ncontainer = 8000\nhost = 8555\n\
         [[site.volume]]\ntype = \"tmpfs\"\ntarget = \"/nua/app/uploads\"\n\
         [[site.provider]]\nname = \"database\"\nenv = { POSTGRES_DB = \"notes\" }\n\
         [[site.provider.volume]]\ntype = \"volume\"\nsource = \"pg_n\"\n\
         target = \"/var/lib/postgresql/data\"\n",
    )[0];
    let d = plan_of(site, &Held(BTreeMap::new())).unwrap();
    assert_eq!(d.network, "shared-net");
    let (db, app) = (&d.containers[0], &d.containers[1]);
    assert_eq!(app.env["MODE"], EnvValue::Str("prod".into()));
    assert!(app.env.contains_key("DB_HOST"));
    assert_eq!(app.ports[0].host, Some(8555));
    assert_eq!(app.volumes.len(), 1);
    assert_eq!(app.volumes[0].kind, Some(VolumeType::Tmpfs));
    assert_eq!(db.env["POSTGRES_DB"], EnvValue::Str("notes".into()));
    assert_eq!(db.volumes.len(), 1);
    assert_eq!(db.volumes[0].name.as_deref(), Some("nua-n-pg_n"));
}

#[test]
fn a_pinned_port_someone_holds_and_an_unknown_provider_are_errors() {
    let site = &sites("[[site]]\nimage = \"notes\"\nlabel = \"n\"\n[site.port.web]\ncontainer = 8000\nhost = 8555\n")[0];
    let held = Held(BTreeMap::from([(8555, "nua-other")]));
    let err = plan_of(site, &held).unwrap_err();
    assert_eq!(
        err.to_string(),
        "port `web` of `n` asks for host port 8555, which `nua-other` holds"
    );
    // The instance itself holding it (a redeploy) is no conflict.
    let mine = Held(BTreeMap::from([(8555, "n")]));
    assert!(plan_of(site, &mine).is_ok());

    let site =
        &sites("[[site]]\nimage = \"notes\"\nlabel = \"n\"\n[[site.provider]]\nname = \"db\"\n")[0];
    let err = plan_of(site, &Held(BTreeMap::new())).unwrap_err();
    assert_eq!(
        err.to_string(),
        "site `n` overrides provider `db`, which `notes` does not have (it has: database)"
    );
}

#[test]
fn a_full_range_and_a_provider_without_image_are_errors() {
    let site = &sites("[[site]]\nimage = \"notes\"\nlabel = \"n\"\n")[0];
    let held = Held(BTreeMap::from([(8100, "nua-other")]));
    let one = Placement {
        range: 8100..=8100,
        ..placement(&held)
    };
    let err = plan(site, "img", &config(), &provider_image, &one).unwrap_err();
    assert_eq!(
        err.to_string(),
        "port `web` of `n`: no free host port is left in 8100–8100"
    );
    let err = plan(site, "img", &config(), &|_| None, &placement(&held)).unwrap_err();
    assert!(
        err.to_string()
            .contains("provider `database` of `notes` has no image"),
        "{err}"
    );
}

#[test]
fn the_desired_state_holds_no_generated_value() {
    let site = &sites("[[site]]\nimage = \"notes\"\nlabel = \"n\"\n")[0];
    let d = plan_of(site, &Held(BTreeMap::new())).unwrap();
    let json = serde_json::to_value(&d).unwrap();
    // The spec of the password, not a password: it is made when applied, and kept encrypted.
    assert_eq!(
        json["containers"][0]["env"]["POSTGRES_PASSWORD"]["random"],
        serde_json::Value::Bool(true)
    );
    let back: Desired = serde_json::from_value(json).unwrap();
    assert_eq!(back, d);
}

#[test]
fn a_redeploy_keeps_the_ports_an_earlier_generation_placed() {
    let site = &sites("[[site]]\nimage = \"notes\"\nlabel = \"n\"\n")[0];
    let held = Held(BTreeMap::from([(8100, "nua-other")]));
    let first = plan_of(site, &held).unwrap();
    assert_eq!(first.containers[1].ports[0].host, Some(8101));
    // 8100 is free now, but the instance keeps 8101.
    let free = Held(BTreeMap::new());
    let again = plan(
        site,
        "nua-notes:1.0-1",
        &config(),
        &provider_image,
        &Placement {
            previous: Some(&first),
            ..placement(&free)
        },
    )
    .unwrap();
    assert_eq!(again, first);
}

#[test]
fn a_docker_option_nua_cannot_honour_is_an_error_naming_the_container() {
    let site =
        &sites("[[site]]\nimage = \"notes\"\nlabel = \"n\"\ndocker = { network = \"host\" }\n")[0];
    let err = plan_of(site, &Held(BTreeMap::new())).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("`[docker]` of the app of `n`: `network`: an instance runs on"),
        "{err}"
    );
    let site = &sites(
        "[[site]]\nimage = \"notes\"\nlabel = \"n\"\n[[site.provider]]\nname = \"database\"\n\
         docker = { cap_add = [\"SYS_ADMIN\"] }\n",
    )[0];
    let err = plan_of(site, &Held(BTreeMap::new())).unwrap_err();
    assert!(
        err.to_string().starts_with(
            "`[docker]` of provider `database` of `n`: `cap_add` is not an option Nua applies"
        ),
        "{err}"
    );
}
