//! `mcp-server` (P0-7): the MCP server. Under the Lambda Runtime API it serves API Gateway
//! REST proxy events; anywhere else it listens on `MCP_BIND` (default 127.0.0.1:8080).
//! Configuration is the environment; see `wikibot::mcp::config`.

use std::path::Path;
use std::process::ExitCode;

use wikibot::mcp::{self, ServerConfig};

fn main() -> ExitCode {
    wikibot::lambda::init_logging();
    let config = match ServerConfig::from_env(Path::new("/mnt/efs")) {
        Ok(config) => config,
        Err(e) => {
            // On Lambda this line is the init error in CloudWatch.
            eprintln!("mcp-server: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let app = match mcp::app(&config) {
        Ok(app) => app,
        Err(e) => {
            eprintln!("mcp-server: {e}");
            return ExitCode::FAILURE;
        }
    };
    let on_lambda = std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some();
    // Lambda sends one request at a time: a single-threaded runtime starts faster.
    let mut builder = if on_lambda {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("mcp-server: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let served = runtime.block_on(async {
        if on_lambda {
            mcp::serve_lambda(app).await.map_err(|e| e.to_string())
        } else {
            let bind = std::env::var("MCP_BIND").unwrap_or_else(|_| "127.0.0.1:8080".to_owned());
            let listener = tokio::net::TcpListener::bind(&bind)
                .await
                .map_err(|e| format!("cannot listen on {bind}: {e}"))?;
            tracing::info!(%bind, resource = %config.resource(), "serving MCP over HTTP");
            mcp::serve_http(app, listener)
                .await
                .map_err(|e| e.to_string())
        }
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcp-server: {e}");
            ExitCode::FAILURE
        }
    }
}
