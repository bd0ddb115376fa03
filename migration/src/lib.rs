//! Migrations of the agentstream database. Written with sea-query's schema builder, not SQL text, so that
//! they run unchanged on SQLite and PostgreSQL.

pub use sea_orm_migration::prelude::*;

mod m20261126_000001_create_tables;
mod m20261126_000002_agent_session;
mod m20261202_000003_instances;
mod m20261202_000004_webhooks;
mod m20261202_000005_usage;
mod m20261202_000006_search;

/// Every migration, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261126_000001_create_tables::Migration),
            Box::new(m20261126_000002_agent_session::Migration),
            Box::new(m20261202_000003_instances::Migration),
            Box::new(m20261202_000004_webhooks::Migration),
            Box::new(m20261202_000005_usage::Migration),
            Box::new(m20261202_000006_search::Migration),
        ]
    }
}
