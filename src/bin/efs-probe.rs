//! `efs-probe` Lambda function (P0-2): write a file on the EFS mount, read it back, report
//! timings. See `wikibot::probes::efs`.

fn main() -> Result<(), lambda_runtime::Error> {
    let probe = wikibot::probes::efs::EfsProbe::from_env();
    wikibot::lambda::run_json_handler(move |event| probe.handle(event))
}
