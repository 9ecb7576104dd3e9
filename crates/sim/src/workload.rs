//! Driving the simulated clients: submit, retry on `NotLeader`, time out, complete.
//!
//! Outcomes are recorded as precisely as the client can know them: a reply completes
//! an operation; a proposal whose slot went to another entry certainly failed and is
//! dropped; a crash or timeout after a node accepted a write leaves it indeterminate
//! (it may still take effect); a read that never returned imposes nothing and is dropped.

use consensus::{NodeId, ProposeError};
use kv::Command;
use lincheck::kv::KvOutput;

use crate::client::ClientOp;
use crate::harness::SimEngine;
use crate::node::Waiter;
use crate::world::{Event, Sim, CLIENT_OP_TIMEOUT_US};

impl<E: SimEngine> Sim<E> {
    pub(crate) fn client_step(&mut self, c: usize) -> Result<(), String> {
        if self.clients[c].current.is_none() {
            if self.draining {
                return Ok(());
            }
            let keys = self.cfg.keys;
            let (command, read_index) = self.clients[c].next_command(&mut self.rng, keys);
            let client_id = self.clients[c].id;
            let hist = self.history.invoke(client_id, &command, self.now);
            let op = self.clients[c].issued;
            self.clients[c].current = Some(ClientOp {
                op,
                hist,
                command,
                read_index,
                accepted: false,
                invoked_us: self.now,
            });
            self.schedule(CLIENT_OP_TIMEOUT_US, Event::ClientTimeout { client: c, op });
        }
        self.client_attempt(c)
    }

    /// Sends the current operation to the node the client believes leads.
    fn client_attempt(&mut self, c: usize) -> Result<(), String> {
        let Some(op) = self.clients[c].current.clone() else {
            return Ok(());
        };
        if op.accepted {
            return Ok(());
        }
        let up: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.is_up() && !n.retired)
            .map(|(&id, _)| id)
            .collect();
        let target = match self.clients[c].leader_guess {
            Some(g) if up.contains(&g) => g,
            _ => match self.rng.pick(&up) {
                Some(&t) => t,
                None => {
                    self.schedule(5_000, Event::ClientStep { client: c });
                    return Ok(());
                }
            },
        };
        let waiter = Waiter {
            client: c,
            op: op.op,
        };
        let n = self.nodes.get_mut(&target).expect("up node exists");
        let engine = n.engine.as_mut().expect("up");
        let result = if op.read_index {
            self.next_ctx += 1;
            let ctx = self.next_ctx;
            engine.read_index(ctx).map(|()| {
                n.reads.insert(
                    ctx,
                    (
                        waiter,
                        op.command
                            .key()
                            .expect("workload commands name a key")
                            .clone(),
                    ),
                );
                None
            })
        } else {
            engine.propose(op.command.encode()).map(|p| {
                n.proposals.insert(p.index, (p.term, waiter));
                Some(p)
            })
        };
        match result {
            Ok(proposed) => {
                if let Some(p) = proposed {
                    self.history.proposed_at(op.hist, p.index, p.term);
                }
                if let Some(cur) = self.clients[c].current.as_mut() {
                    cur.accepted = true;
                }
                self.clients[c].leader_guess = Some(target);
                self.drive(target)
            }
            Err(ProposeError::NotLeader { hint }) => {
                self.clients[c].leader_guess = hint;
                let d = self.rng.range(1_000, 5_000);
                self.schedule(d, Event::ClientStep { client: c });
                Ok(())
            }
            Err(_) => {
                self.clients[c].leader_guess = None;
                let d = self.rng.range(2_000, 10_000);
                self.schedule(d, Event::ClientStep { client: c });
                Ok(())
            }
        }
    }

    fn client_next(&mut self, c: usize) {
        self.clients[c].current = None;
        if !self.draining {
            let d = self.rng.range(0, 5_000);
            self.schedule(d, Event::ClientStep { client: c });
        }
    }

    fn current_op(&self, w: &Waiter) -> Option<ClientOp> {
        self.clients[w.client]
            .current
            .as_ref()
            .filter(|op| op.op == w.op)
            .cloned()
    }

    /// The operation's reply arrived (`None`: an unexpected response, treated as lost).
    pub(crate) fn complete_waiter(&mut self, w: Waiter, output: Option<KvOutput>) {
        let Some(op) = self.current_op(&w) else {
            return;
        };
        let Some(output) = output else {
            self.waiter_lost(w);
            return;
        };
        if let KvOutput::Value(v) = &output {
            let key = op
                .command
                .key()
                .expect("workload commands name a key")
                .clone();
            self.clients[w.client]
                .seen
                .insert(key, v.clone().map(bytes::Bytes::from));
        }
        self.history.complete(op.hist, output, self.now);
        self.stats.ops_completed += 1;
        self.client_next(w.client);
    }

    /// The operation certainly did not take effect.
    pub(crate) fn discard_waiter(&mut self, w: Waiter) {
        let Some(op) = self.current_op(&w) else {
            return;
        };
        self.history.discard(op.hist);
        self.client_next(w.client);
    }

    /// The client will never hear back (node crashed, snapshot skipped the slot).
    pub(crate) fn waiter_lost(&mut self, w: Waiter) {
        let Some(op) = self.current_op(&w) else {
            return;
        };
        self.settle_unknown(w.client, &op);
    }

    pub(crate) fn client_gave_up(&mut self, c: usize, op_no: u64) {
        let Some(op) = self.clients[c].current.clone().filter(|o| o.op == op_no) else {
            return;
        };
        self.settle_unknown(c, &op);
    }

    fn settle_unknown(&mut self, c: usize, op: &ClientOp) {
        let is_read = matches!(op.command, Command::Get { .. });
        if is_read || !op.accepted {
            self.history.discard(op.hist);
        } else {
            self.stats.ops_indeterminate += 1;
        }
        self.clients[c].leader_guess = None;
        let _ = op.invoked_us;
        self.client_next(c);
    }
}
