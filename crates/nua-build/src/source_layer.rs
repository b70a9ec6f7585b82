//! The source layer: the app's folder, or a `src-url` archive or `git-url` repository
//! fetched by [`fetch`].

use std::path::{Path, PathBuf};

use super::app::{Build, APP_FORMAT};
use super::fetch::{self, Origin};
use super::layers::{key_of, Chain};
use super::plan::AppPlan;
use super::steps::{self, Step};
use super::why::{self, Inputs};
use super::{Error, Event, Reporter, SourceFilter};

/// The context the layer-writing steps need, for the source folder `src_dir`.
pub fn context<'a>(build: &Build<'a>, src_dir: PathBuf) -> Result<steps::Context<'a>, Error> {
    let filter = SourceFilter::new(&src_dir)?.excluding(&src_dir, build.options.output.path());
    Ok(steps::Context {
        app: build.app,
        store: build.store,
        options: build.options,
        src_dir,
        filter,
    })
}

/// The source layer of the folder `src_dir`.
pub fn local(
    build: &Build<'_>,
    chain: &mut Chain,
    src_dir: PathBuf,
    reporter: &mut dyn Reporter,
) -> Result<(), Error> {
    if !src_dir.is_dir() {
        return Err(Error::Project {
            path: src_dir,
            project: build.app.config.build.project.clone().unwrap_or_default(),
        });
    }
    let ctx = context(build, src_dir)?;
    let key = Step::Source.cache_key(&ctx, &chain.key)?;
    let include = |rel: &Path, is_dir: bool| ctx.filter.includes(rel, is_dir);
    let inputs = why::tree_inputs(&ctx.src_dir, &include).map_err(|source| Error::Read {
        path: ctx.src_dir.clone(),
        source,
    })?;
    build.explained_step(
        chain,
        key,
        Step::Source.name(),
        &inputs,
        reporter,
        |_, _| Step::Source.run(&ctx, None),
    )?;
    Ok(())
}

/// Say what the fetch left out of the archive (device nodes, fifos, sockets).
fn report_left_out(fetched: &fetch::Fetched, reporter: &mut dyn Reporter) {
    for message in fetched.warnings() {
        reporter.event(Event::Warning { message });
    }
}

/// The source layer of a `src-url` archive or `git-url` repository. When the content can
/// be named before fetching (a `src-checksum`, a git commit), a cached layer needs no
/// download; else the archive is fetched and its tree decides.
pub fn fetched(
    build: &Build<'_>,
    chain: &mut Chain,
    origin: &Origin,
    plan: &AppPlan,
    reporter: &mut dyn Reporter,
) -> Result<(), Error> {
    let fetch_error = |source| Error::Fetch {
        source: Box::new(source),
    };
    let work_dir = build.options.cache_dir.join("sources");
    let store = build.store;
    let project = plan
        .project
        .as_deref()
        .filter(|p| !p.is_empty() && *p != ".");
    let Some(identity) = fetch::pin(origin).map_err(fetch_error)? else {
        // An archive without a checksum: fetched every time, keyed by its content.
        let fetched = fetch::fetch(origin, &work_dir, store).map_err(fetch_error)?;
        report_left_out(&fetched, reporter);
        let message = format!(
            "`src-url` has no `src-checksum`: the archive is not verified; pin it with \
             src-checksum = \"{}\"",
            fetched.identity().trim_start_matches("sha256:")
        );
        reporter.event(Event::Warning { message: &message });
        let src_dir = fetch::project_dir(fetched.root(), project).map_err(fetch_error)?;
        return local(build, chain, src_dir, reporter);
    };
    let options = &build.options;
    let key = key_of(
        &chain.key,
        &[
            APP_FORMAT,
            steps::STEP_FORMAT,
            "source",
            &identity,
            project.unwrap_or_default(),
            &options.compression.cache_name(),
            &options.source_date_epoch.to_string(),
        ],
    );
    let inputs: Inputs = [("source".to_owned(), identity.clone())].into();
    build.explained_step(
        chain,
        key,
        Step::Source.name(),
        &inputs,
        reporter,
        |_, reporter| {
            let fetched = fetch::fetch_pinned(origin, Some(&identity), &work_dir, store)
                .map_err(fetch_error)?;
            report_left_out(&fetched, reporter);
            let src_dir = fetch::project_dir(fetched.root(), project).map_err(fetch_error)?;
            let ctx = context(build, src_dir)?;
            Step::Source.run(&ctx, None)
        },
    )?;
    Ok(())
}
