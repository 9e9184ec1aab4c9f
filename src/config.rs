//! Settings shared by every command: flags, else environment, else defaults.

use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Where the event store lives: postgres://... or sqlite://FILE.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://gradebook.db",
        global = true
    )]
    pub database_url: String,

    /// Listen address.
    #[arg(
        long,
        env = "GRADEBOOK_BIND",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub bind: String,

    /// Public base URL: the platform issuer and the base of every URL
    /// handed to tools. Defaults to http:// plus the listen address.
    #[arg(long, env = "GRADEBOOK_PUBLIC_URL", global = true)]
    pub public_url: Option<String>,

    /// Database connections per node.
    #[arg(
        long,
        env = "GRADEBOOK_DB_CONNECTIONS",
        default_value_t = 16,
        global = true
    )]
    pub db_connections: u32,
}

impl Settings {
    /// The issuer and URL base, without a trailing slash (tools compare
    /// issuers byte for byte).
    pub fn public_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.bind))
            .trim_end_matches('/')
            .to_string()
    }
}
