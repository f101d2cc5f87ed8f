//! wikibot: a wiki that AI assistants read and write over MCP. Every page lives in a git
//! repository (on EFS in production) and every request is served by an AWS Lambda function.
//!
//! See `ARCHITECTURE.md` for the map. In short: [`store`] owns pages and git; [`probes`]
//! are the Phase 0 Lambda handlers; [`lambda`] holds what the Lambda binaries share and the
//! local Runtime API emulator that runs them; [`bench`] measures the store; [`tls`] makes the
//! HTTPS clients; `workos_login` (feature `workos-cli`, CLI only) is `wikibot workos login`.

pub mod auth;
pub mod bench;
pub mod config;
#[doc(hidden)]
pub mod fuzzing;
pub mod lambda;
pub mod mcp;
pub mod probes;
pub mod store;
pub mod tls;
#[cfg(feature = "workos-cli")]
pub mod workos_login;
