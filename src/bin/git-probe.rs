//! `git-probe` Lambda function (P0-3): the git page store's lifecycle on EFS, driven by JSON
//! events. See `wikibot::probes::git` and `docs/git-probe.md`.

fn main() -> Result<(), lambda_runtime::Error> {
    let probe = wikibot::probes::git::GitProbe::from_env()?;
    wikibot::lambda::run_json_handler(move |event| probe.handle(event))
}
