//! The data commands: each request becomes a [`Plan`] — proposals to replicate or a
//! query to answer after a read barrier — plus how to turn the outcome into a reply.
//!
//! Parsing is pure (the clock is an argument), so a relative expiry (`EX 10`) becomes an
//! absolute deadline here, before proposing, and every replica applies the same one.
//! Replies and error texts follow Redis 7.2.

use bytes::Bytes;
use kv::{parse_i64, Command, ExpireCond, Expiry, KvError, Query, QueryResult, Response, SetCond};
use resp::Frame;

/// What a data command needs from the replica.
pub(crate) enum Plan {
    /// Replicate these commands (concurrently, in order) and shape their responses.
    Write(Vec<Command>, fn(Vec<Response>) -> Frame),
    /// Answer this query linearizably and shape its result.
    Read(Query, fn(QueryResult) -> Frame),
}

pub(crate) fn err(text: impl Into<String>) -> Frame {
    Frame::Error(Bytes::from(text.into()))
}

pub(crate) fn ok() -> Frame {
    Frame::simple("OK")
}

fn arity(name: &str) -> Frame {
    err(format!(
        "ERR wrong number of arguments for '{name}' command"
    ))
}

fn syntax() -> Frame {
    err("ERR syntax error")
}

fn not_integer() -> Frame {
    err(KvError::NotInteger.to_string())
}

fn unexpected<T: std::fmt::Debug>(r: T) -> Frame {
    err(format!(
        "ERR internal: unexpected state machine answer {r:?}"
    ))
}

fn int(b: &[u8]) -> Result<i64, Frame> {
    parse_i64(b).ok_or_else(not_integer)
}

/// The data commands this module plans, for COMMAND COUNT and the unknown-command path.
pub(crate) const NAMES: [&str; 27] = [
    "get",
    "set",
    "setnx",
    "getset",
    "getdel",
    "del",
    "exists",
    "incr",
    "incrby",
    "decr",
    "decrby",
    "append",
    "strlen",
    "mget",
    "mset",
    "expire",
    "pexpire",
    "expireat",
    "pexpireat",
    "ttl",
    "pttl",
    "persist",
    "dbsize",
    "keys",
    "scan",
    "type",
    "unlink",
];

/// Plans `args` (`args[0]` lowercased in `name`); `None` if `name` is not a data
/// command; `Err` is the reply to send without touching the replica.
pub(crate) fn plan(name: &str, args: &[Bytes], now_ms: u64) -> Option<Result<Plan, Frame>> {
    let a = &args[1..];
    let key = |i: usize| a[i].clone();
    let write1 = |c: Command, shape: fn(Vec<Response>) -> Frame| Ok(Plan::Write(vec![c], shape));
    Some(match (name, a.len()) {
        ("get", 1) => Ok(Plan::Read(Query::Get(key(0)), value)),
        ("set", n) if n >= 2 => set(a, now_ms),
        ("setnx", 2) => write1(
            Command::Set {
                key: key(0),
                value: key(1),
                cond: SetCond::IfAbsent,
                expiry: Expiry::Clear,
            },
            written_as_integer,
        ),
        ("getset", 2) => write1(
            Command::Set {
                key: key(0),
                value: key(1),
                cond: SetCond::Always,
                expiry: Expiry::Clear,
            },
            old_value,
        ),
        ("getdel", 1) => write1(Command::GetDel { key: key(0) }, first_value),
        ("del" | "unlink", n) if n >= 1 => Ok(Plan::Write(
            a.iter()
                .map(|k| Command::Delete { key: k.clone() })
                .collect(),
            deleted_count,
        )),
        ("exists", n) if n >= 1 => Ok(Plan::Read(Query::Exists(a.to_vec()), integer_result)),
        ("incr", 1) => write1(
            Command::IncrBy {
                key: key(0),
                delta: 1,
            },
            integer,
        ),
        ("decr", 1) => write1(
            Command::IncrBy {
                key: key(0),
                delta: -1,
            },
            integer,
        ),
        ("incrby", 2) => int(&a[1]).and_then(|d| {
            write1(
                Command::IncrBy {
                    key: key(0),
                    delta: d,
                },
                integer,
            )
        }),
        ("decrby", 2) => match int(&a[1]) {
            Ok(i64::MIN) => Err(err("ERR decrement would overflow")),
            Ok(d) => write1(
                Command::IncrBy {
                    key: key(0),
                    delta: -d,
                },
                integer,
            ),
            Err(e) => Err(e),
        },
        ("append", 2) => write1(
            Command::Append {
                key: key(0),
                value: key(1),
            },
            integer,
        ),
        ("strlen", 1) => Ok(Plan::Read(Query::Strlen(key(0)), integer_result)),
        ("mget", n) if n >= 1 => Ok(Plan::Read(Query::MGet(a.to_vec()), values)),
        ("mset", n) if n >= 2 && n % 2 == 0 => Ok(Plan::Write(
            a.chunks(2)
                .map(|kv| Command::Put {
                    key: kv[0].clone(),
                    value: kv[1].clone(),
                })
                .collect(),
            all_ok,
        )),
        ("expire" | "pexpire" | "expireat" | "pexpireat", n) if n >= 2 => expire(name, a, now_ms),
        ("ttl", 1) => Ok(Plan::Read(Query::Pttl(key(0)), ttl_seconds)),
        ("pttl", 1) => Ok(Plan::Read(Query::Pttl(key(0)), integer_result)),
        ("persist", 1) => write1(
            Command::Expire {
                key: key(0),
                at: None,
                cond: ExpireCond::Always,
            },
            integer,
        ),
        ("dbsize", 0) => Ok(Plan::Read(Query::DbSize, integer_result)),
        ("keys", 1) => Ok(Plan::Read(Query::Keys(key(0)), keys)),
        ("scan", n) if n >= 1 => scan(a),
        ("type", 1) => Ok(Plan::Read(Query::Exists(vec![key(0)]), type_of)),
        (name, _) if NAMES.contains(&name) => Err(arity(name)),
        _ => return None,
    })
}

/// SET key value [NX|XX] [GET] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL]
fn set(a: &[Bytes], now_ms: u64) -> Result<Plan, Frame> {
    let mut cond = SetCond::Always;
    let mut get = false;
    let mut expiry: Option<Expiry> = None;
    let mut i = 2;
    while i < a.len() {
        let opt = a[i].to_ascii_lowercase();
        let has_next = i + 1 < a.len();
        match &opt[..] {
            b"nx" if cond != SetCond::IfPresent => cond = SetCond::IfAbsent,
            b"xx" if cond != SetCond::IfAbsent => cond = SetCond::IfPresent,
            b"get" => get = true,
            b"keepttl" if expiry.is_none() => expiry = Some(Expiry::Keep),
            b"ex" | b"px" | b"exat" | b"pxat" if expiry.is_none() && has_next => {
                i += 1;
                let n = int(&a[i])?;
                let invalid = || err("ERR invalid expire time in 'set' command");
                if n <= 0 {
                    return Err(invalid());
                }
                let ms = match &opt[..] {
                    b"ex" | b"exat" => n.checked_mul(1000).ok_or_else(invalid)?,
                    _ => n,
                };
                let at = match &opt[..] {
                    b"ex" | b"px" => (ms as u64).checked_add(now_ms).ok_or_else(invalid)?,
                    _ => ms as u64,
                };
                expiry = Some(Expiry::At(at));
            }
            _ => return Err(syntax()),
        }
        i += 1;
    }
    let cmd = Command::Set {
        key: a[0].clone(),
        value: a[1].clone(),
        cond,
        expiry: expiry.unwrap_or(Expiry::Clear),
    };
    Ok(Plan::Write(
        vec![cmd],
        if get { old_value } else { set_reply },
    ))
}

/// EXPIRE/PEXPIRE key n and EXPIREAT/PEXPIREAT key t, with [NX|XX|GT|LT].
fn expire(name: &str, a: &[Bytes], now_ms: u64) -> Result<Plan, Frame> {
    let n = int(&a[1])?;
    let invalid = || err(format!("ERR invalid expire time in '{name}' command"));
    let ms = if name.starts_with('p') {
        n
    } else {
        n.checked_mul(1000).ok_or_else(invalid)?
    };
    let at = if name.ends_with("at") {
        ms
    } else {
        ms.checked_add(now_ms as i64).ok_or_else(invalid)?
    };
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for opt in &a[2..] {
        match &opt.to_ascii_lowercase()[..] {
            b"nx" => nx = true,
            b"xx" => xx = true,
            b"gt" => gt = true,
            b"lt" => lt = true,
            _ => {
                return Err(err(format!(
                    "ERR Unsupported option {}",
                    String::from_utf8_lossy(opt)
                )))
            }
        }
    }
    if nx && (xx || gt || lt) {
        return Err(err(
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if gt && lt {
        return Err(err(
            "ERR GT and LT options at the same time are not compatible",
        ));
    }
    // GT already requires a deadline (none counts as infinite), so XX adds nothing
    // to it; XX LT is "has a deadline and the new one is earlier".
    let cond = match (nx, xx, gt, lt) {
        (true, ..) => ExpireCond::IfNone,
        (_, _, true, _) => ExpireCond::Later,
        (_, true, _, true) => ExpireCond::EarlierExisting,
        (_, _, _, true) => ExpireCond::Earlier,
        (_, true, ..) => ExpireCond::IfSome,
        _ => ExpireCond::Always,
    };
    Ok(Plan::Write(
        vec![Command::Expire {
            key: a[0].clone(),
            at: Some(at.max(0) as u64),
            cond,
        }],
        integer,
    ))
}

/// SCAN cursor [MATCH pattern] [COUNT n] [TYPE t]
fn scan(a: &[Bytes]) -> Result<Plan, Frame> {
    let cursor = std::str::from_utf8(&a[0])
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| err("ERR invalid cursor"))?;
    let (mut pattern, mut count, mut type_matches) = (None, 10usize, true);
    let mut i = 1;
    while i < a.len() {
        if i + 1 >= a.len() {
            return Err(syntax());
        }
        match &a[i].to_ascii_lowercase()[..] {
            b"match" => pattern = Some(a[i + 1].clone()),
            b"count" => {
                let n = int(&a[i + 1])?;
                if n < 1 {
                    return Err(syntax());
                }
                count = n.min(1 << 20) as usize;
            }
            b"type" => type_matches = a[i + 1].eq_ignore_ascii_case(b"string"),
            _ => return Err(syntax()),
        }
        i += 2;
    }
    Ok(Plan::Read(
        Query::Scan {
            cursor,
            pattern,
            count,
            type_matches,
        },
        |r| match r {
            QueryResult::Scan { cursor, keys } => Frame::Array(vec![
                Frame::Bulk(Bytes::from(cursor.to_string())),
                Frame::Array(keys.into_iter().map(Frame::Bulk).collect()),
            ]),
            other => unexpected(other),
        },
    ))
}

fn only(mut r: Vec<Response>) -> Response {
    r.pop().unwrap_or(Response::Invalid("no response".into()))
}

fn set_reply(r: Vec<Response>) -> Frame {
    match only(r) {
        Response::Set { written: true, .. } => ok(),
        Response::Set { written: false, .. } => Frame::Null,
        other => unexpected(other),
    }
}

fn old_value(r: Vec<Response>) -> Frame {
    match only(r) {
        Response::Set { old, .. } => old.map_or(Frame::Null, Frame::Bulk),
        other => unexpected(other),
    }
}

fn written_as_integer(r: Vec<Response>) -> Frame {
    match only(r) {
        Response::Set { written, .. } => Frame::Integer(written as i64),
        other => unexpected(other),
    }
}

fn first_value(r: Vec<Response>) -> Frame {
    match only(r) {
        Response::Value(v) => v.map_or(Frame::Null, Frame::Bulk),
        other => unexpected(other),
    }
}

fn integer(r: Vec<Response>) -> Frame {
    match only(r) {
        Response::Integer(n) => Frame::Integer(n),
        Response::Error(e) => err(e.to_string()),
        other => unexpected(other),
    }
}

fn deleted_count(r: Vec<Response>) -> Frame {
    Frame::Integer(
        r.iter()
            .filter(|x| matches!(x, Response::Deleted(true)))
            .count() as i64,
    )
}

fn all_ok(r: Vec<Response>) -> Frame {
    match r.into_iter().find(|x| *x != Response::Ok) {
        None => ok(),
        Some(other) => unexpected(other),
    }
}

fn value(r: QueryResult) -> Frame {
    match r {
        QueryResult::Value(v) => v.map_or(Frame::Null, Frame::Bulk),
        other => unexpected(other),
    }
}

fn values(r: QueryResult) -> Frame {
    match r {
        QueryResult::Values(v) => Frame::Array(
            v.into_iter()
                .map(|x| x.map_or(Frame::Null, Frame::Bulk))
                .collect(),
        ),
        other => unexpected(other),
    }
}

fn integer_result(r: QueryResult) -> Frame {
    match r {
        QueryResult::Integer(n) => Frame::Integer(n),
        other => unexpected(other),
    }
}

fn ttl_seconds(r: QueryResult) -> Frame {
    match r {
        // Redis rounds to the nearest second.
        QueryResult::Integer(ms) if ms >= 0 => Frame::Integer((ms + 500) / 1000),
        QueryResult::Integer(n) => Frame::Integer(n),
        other => unexpected(other),
    }
}

fn keys(r: QueryResult) -> Frame {
    match r {
        QueryResult::Keys(k) => Frame::Array(k.into_iter().map(Frame::Bulk).collect()),
        other => unexpected(other),
    }
}

fn type_of(r: QueryResult) -> Frame {
    match r {
        QueryResult::Integer(0) => Frame::simple("none"),
        QueryResult::Integer(_) => Frame::simple("string"),
        other => unexpected(other),
    }
}
