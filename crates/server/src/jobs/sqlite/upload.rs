//! Uploads: a job begins, takes its items, and is sealed (or aborted).

use rusqlite::{Connection, OptionalExtension, params};

use super::*;

pub(super) fn begin(tx: &Connection, ctx: &Ctx, job: NewJob) -> StoreResult<Begun> {
    let e = |e: rusqlite::Error| sql(ctx, &e);
    if let Some(key) = &job.idempotency_key {
        let existing: Option<String> = row(
            tx,
            "SELECT id FROM jobs WHERE idem = ?1 AND state != 'validating'",
            [key],
            |r| r.get(0),
        )
        .optional()
        .map_err(e)?;
        if let Some(id) = existing {
            return Ok(Begun::Existing(load(tx, ctx, &id)?));
        }
    }
    let open: i64 = row(tx,
                "SELECT COUNT(*) FROM jobs WHERE state NOT IN ('completed', 'failed', 'expired', 'cancelled')",
                [],
                |r| r.get(0),
            )
            .map_err(e)?;
    if open as u64 >= ctx.limits.max_open_jobs {
        return Err(StoreError::Limit(format!(
            "{open} jobs are open, the most jobs.max_open_jobs allows"
        )));
    }
    let id = new_id();
    let now = now_ms();
    let window = u64::try_from(job.window.as_millis()).unwrap_or(u64::MAX);
    exec(
        tx,
        "INSERT INTO jobs(id, queue, state, priority, labels, idem, created, expires)
             VALUES (?1, ?2, 'validating', ?3, ?4, ?5, ?6, ?7)",
        params![
            id,
            job.queue,
            job.priority,
            serde_json::to_string(&job.labels).unwrap_or_default(),
            job.idempotency_key,
            now as i64,
            now.saturating_add(window).min(i64::MAX as u64) as i64,
        ],
    )
    .map_err(e)?;
    Ok(Begun::New(id))
}

pub(super) fn append(
    tx: &Connection,
    ctx: &Ctx,
    id: &str,
    first: u64,
    items: Vec<NewItem>,
) -> StoreResult<()> {
    let e = |e: rusqlite::Error| sql(ctx, &e);
    let (total, bytes): (i64, i64) = row(
        tx,
        "SELECT total, bytes FROM jobs WHERE id = ?1 AND state = 'validating'",
        [&id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
    .map_err(e)?
    .ok_or_else(|| StoreError::NotFound(id.to_owned()))?;
    let stored: i64 = row(tx, "SELECT COALESCE(SUM(bytes), 0) FROM jobs", [], |r| {
        r.get(0)
    })
    .map_err(e)?;
    let (total, mut bytes, mut stored) = (total as u64, bytes as u64, stored as u64);
    let limits = &ctx.limits;
    let mut insert = tx
        .prepare_cached(
            "INSERT INTO items(job, seq, custom_id, payload, attributes, cost, batch_key)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .map_err(e)?;
    for (n, item) in items.iter().enumerate() {
        let seq = total + n as u64;
        let bad = |reason: String| StoreError::BadItem {
            index: first + n as u64,
            custom_id: item.custom_id.clone(),
            reason,
        };
        if seq >= limits.max_items_per_job {
            return Err(StoreError::Limit(format!(
                "item {} (custom_id {:?}) is past jobs.max_items_per_job ({})",
                first + n as u64,
                item.custom_id,
                limits.max_items_per_job
            )));
        }
        bytes += item.bytes();
        stored += item.bytes();
        if bytes > limits.max_job_bytes || stored > limits.max_store_bytes {
            return Err(StoreError::Limit(format!(
                "item {} (custom_id {:?}) takes the job past jobs.max_job_bytes ({}) or the store past jobs.max_store_bytes ({})",
                first + n as u64,
                item.custom_id,
                limits.max_job_bytes,
                limits.max_store_bytes
            )));
        }
        let attributes = if item.attributes.is_empty() {
            String::new()
        } else {
            serde_json::to_string(&item.attributes).unwrap_or_default()
        };
        match insert.execute(params![
            id,
            seq as i64,
            item.custom_id,
            &item.payload[..],
            attributes,
            item.cost.map(|c| c.min(i64::MAX as u64) as i64),
            item.batch_key,
        ]) {
            Ok(_) => {}
            Err(rusqlite::Error::SqliteFailure(f, _))
                if f.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                return Err(bad("duplicate custom_id in the job".into()));
            }
            Err(err) => return Err(e(err)),
        }
    }
    exec(
        tx,
        "UPDATE jobs SET total = ?2, bytes = ?3 WHERE id = ?1",
        params![id, (total + items.len() as u64) as i64, bytes as i64],
    )
    .map_err(e)?;
    Ok(())
}

pub(super) fn seal(tx: &Connection, ctx: &Ctx, id: &str) -> StoreResult<JobInfo> {
    let e = |e: rusqlite::Error| sql(ctx, &e);
    let sealed = tx
        .execute(
            "UPDATE jobs SET state = 'queued' WHERE id = ?1 AND state = 'validating'",
            [&id],
        )
        .map_err(e)?;
    if sealed == 0 {
        return Err(StoreError::NotFound(id.to_owned()));
    }
    // An empty job is done at once.
    settle(tx, ctx, id)
}

pub(super) fn abort(tx: &Connection, ctx: &Ctx, id: &str) -> StoreResult<()> {
    let e = |e: rusqlite::Error| sql(ctx, &e);
    exec(tx,
            "DELETE FROM items WHERE job = ?1 AND EXISTS (SELECT 1 FROM jobs WHERE id = ?1 AND state = 'validating')",
            [&id],
        )
        .map_err(e)?;
    exec(
        tx,
        "DELETE FROM jobs WHERE id = ?1 AND state = 'validating'",
        [&id],
    )
    .map_err(e)?;
    Ok(())
}
