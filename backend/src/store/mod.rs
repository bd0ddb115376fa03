//! The read side of the database: the queries behind REST, subscriptions and replays, and the rows
//! they return as the protocol's shapes ([`rows`]). Anything may read, at any time; only the
//! persistence actor writes.

mod rows;
pub mod search;
pub mod usage;

use agentstream_wire::{keys, Agent, AgentStatus, EventType, MessageType, StoredMessage};
use entity::{agent, agent_message};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, Order, QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use rows::corrupt;
pub use rows::{agent_to_wire, message_to_wire};

/// One agent.
pub async fn find_agent(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<Agent>, DbErr> {
    entity::Agent::find_by_id(id.to_string())
        .one(db)
        .await?
        .map(agent_to_wire)
        .transpose()
}

/// Every agent, newest first.
pub async fn list_agents(db: &impl ConnectionTrait) -> Result<Vec<Agent>, DbErr> {
    entity::Agent::find()
        .order_by(agent::Column::CreatedAt, Order::Desc)
        .order_by(agent::Column::Id, Order::Desc)
        .all(db)
        .await?
        .into_iter()
        .map(agent_to_wire)
        .collect()
}

/// The agent's messages with `sequence_number > since`, ascending, at most `limit` of them.
pub async fn find_since(
    db: &impl ConnectionTrait,
    agent_id: Uuid,
    since: i64,
    limit: Option<u64>,
) -> Result<Vec<StoredMessage>, DbErr> {
    let mut query = entity::AgentMessage::find()
        .filter(agent_message::Column::AgentId.eq(agent_id.to_string()))
        .filter(agent_message::Column::SequenceNumber.gt(since))
        .order_by(agent_message::Column::SequenceNumber, Order::Asc);
    if let Some(limit) = limit {
        query = query.limit(limit);
    }
    query
        .all(db)
        .await?
        .into_iter()
        .map(message_to_wire)
        .collect()
}

/// The messages numbered `after + 1 ..= until` of each `(agent, after, until)`, in one query; each
/// agent's in order.
pub async fn find_ranges(
    db: &impl ConnectionTrait,
    ranges: &[(Uuid, i64, i64)],
) -> Result<Vec<StoredMessage>, DbErr> {
    if ranges.is_empty() {
        return Ok(Vec::new());
    }
    let mut any = sea_orm::Condition::any();
    for (agent, after, until) in ranges {
        any = any.add(
            sea_orm::Condition::all()
                .add(agent_message::Column::AgentId.eq(agent.to_string()))
                .add(agent_message::Column::SequenceNumber.gt(*after))
                .add(agent_message::Column::SequenceNumber.lte(*until)),
        );
    }
    entity::AgentMessage::find()
        .filter(any)
        .order_by(agent_message::Column::AgentId, Order::Asc)
        .order_by(agent_message::Column::SequenceNumber, Order::Asc)
        .all(db)
        .await?
        .into_iter()
        .map(message_to_wire)
        .collect()
}

/// Whether the agent ever asked the permission `request_id` (a `permission_request` message).
pub async fn permission_requested(
    db: &impl ConnectionTrait,
    agent_id: Uuid,
    request_id: &str,
) -> Result<bool, DbErr> {
    use sea_orm::sea_query::{Expr, LikeExpr};
    let escaped: String = request_id
        .chars()
        .flat_map(|c| match c {
            '%' | '_' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    let pattern = format!("%\"requestId\":\"{escaped}\"%");
    let rows = entity::AgentMessage::find()
        .filter(agent_message::Column::AgentId.eq(agent_id.to_string()))
        .filter(agent_message::Column::MessageType.eq(MessageType::Tool.as_str()))
        .filter(
            Expr::col(agent_message::Column::Metadata).like(LikeExpr::new(pattern).escape('\\')),
        )
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|m| message_to_wire(m).ok())
        .any(|m| {
            EventType::of(&m.metadata) == Some(EventType::PermissionRequest)
                && m.metadata[keys::REQUEST_ID] == request_id
        }))
}

/// The tools a client allowed for the rest of the agent's session (answers with `"always": true`).
pub async fn always_allowed_tools(
    db: &impl ConnectionTrait,
    agent_id: Uuid,
) -> Result<Vec<String>, DbErr> {
    use sea_orm::sea_query::Expr;
    let rows = entity::AgentMessage::find()
        .filter(agent_message::Column::AgentId.eq(agent_id.to_string()))
        .filter(agent_message::Column::MessageType.eq(MessageType::User.as_str()))
        .filter(Expr::col(agent_message::Column::Metadata).like("%\"always\":true%"))
        .all(db)
        .await?;
    let mut tools: Vec<String> = Vec::new();
    for m in rows.into_iter().filter_map(|m| message_to_wire(m).ok()) {
        let allowed = EventType::of(&m.metadata) == Some(EventType::PermissionResponse)
            && m.metadata[keys::ALWAYS] == true
            && m.metadata[keys::DECISION] == "allow";
        if let (true, Some(tool)) = (allowed, m.metadata[keys::TOOL_NAME].as_str()) {
            if !tools.iter().any(|t| t == tool) {
                tools.push(tool.to_owned());
            }
        }
    }
    Ok(tools)
}

/// The agent's highest sequence number (0 when it has no message).
pub async fn last_sequence(db: &impl ConnectionTrait, agent_id: Uuid) -> Result<i64, DbErr> {
    let max: Option<Option<i64>> = entity::AgentMessage::find()
        .select_only()
        .column_as(agent_message::Column::SequenceNumber.max(), "max")
        .filter(agent_message::Column::AgentId.eq(agent_id.to_string()))
        .into_tuple()
        .one(db)
        .await?;
    Ok(max.flatten().unwrap_or(0))
}

/// The agents left `initializing`, `running` or `awaiting_permission` (those of `owner` when given).
pub async fn unfinished_agents(
    db: &impl ConnectionTrait,
    owner: Option<&str>,
) -> Result<Vec<String>, DbErr> {
    let mut query = entity::Agent::find()
        .select_only()
        .column(agent::Column::Id)
        .filter(agent::Column::Status.is_in([
            AgentStatus::Initializing.as_str(),
            AgentStatus::Running.as_str(),
            AgentStatus::AwaitingPermission.as_str(),
        ]));
    if let Some(owner) = owner {
        // An agent stored before owners were recorded is anyone's: the first instance to start takes it.
        query = query.filter(
            sea_orm::Condition::any()
                .add(agent::Column::Owner.eq(owner))
                .add(agent::Column::Owner.is_null()),
        );
    }
    query.into_tuple().all(db).await
}

/// The highest sequence number of each of `agents` that has a message (one statement).
pub async fn last_sequences(
    db: &impl ConnectionTrait,
    agents: &[Uuid],
) -> Result<std::collections::HashMap<Uuid, i64>, DbErr> {
    let rows: Vec<(String, Option<i64>)> = entity::AgentMessage::find()
        .select_only()
        .column(agent_message::Column::AgentId)
        .column_as(agent_message::Column::SequenceNumber.max(), "max")
        .filter(agent_message::Column::AgentId.is_in(agents.iter().map(|a| a.to_string())))
        .group_by(agent_message::Column::AgentId)
        .into_tuple()
        .all(db)
        .await?;
    rows.into_iter()
        .map(|(id, max)| {
            let id = Uuid::parse_str(&id).map_err(|e| corrupt("message agent id", e))?;
            Ok((id, max.unwrap_or(0)))
        })
        .collect()
}
