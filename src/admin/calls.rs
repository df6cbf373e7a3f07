//! How an admin request asks other threads and continues with the answer:
//! a store read on the reader pool, one reactor (a session's home), or every
//! reactor at once. The answer comes back as a continuation on the admin
//! thread (`Server::resume`); nothing here waits.

use std::sync::{Arc, Mutex};

use super::server::{ReqId, Server, Step};
use crate::reactor::Reactor;
use crate::reactor::admin::Reply;
use crate::reactor::shared::Msg;
use crate::store::{Answer, Query};

impl Server {
    /// Read from the store, then continue with the answer.
    pub fn read(
        &mut self,
        id: ReqId,
        q: Query,
        then: impl FnOnce(&mut Server, ReqId, Answer) -> Step + Send + 'static,
    ) -> Step {
        let r = self.resume(id);
        self.ctx.shared.readers.submit(q, Box::new(move |answer| r.then(move |srv, id| then(srv, id, answer))));
        Step::Wait
    }

    /// Ask reactor `n`; `call` runs on it and answers through the [`Reply`]
    /// (`None` when the reactor dropped it).
    pub fn ask<T: Send + 'static>(
        &mut self,
        id: ReqId,
        n: usize,
        call: impl FnOnce(&mut Reactor, Reply<T>) + Send + 'static,
        then: impl FnOnce(&mut Server, ReqId, Option<T>) -> Step + Send + 'static,
    ) -> Step {
        let Some(h) = self.ctx.shared.reactors.get(n).cloned() else {
            return self.internal("no such reactor");
        };
        let r = self.resume(id);
        let reply = Reply::new(move |v: Option<T>| r.then(move |srv, id| then(srv, id, v)));
        h.send(Msg::Call(Box::new(move |reactor: &mut Reactor| call(reactor, reply))));
        Step::Wait
    }

    /// Ask every reactor; continue once all answered (in reactor order).
    pub fn ask_all<T: Send + 'static>(
        &mut self,
        id: ReqId,
        call: impl Fn(&mut Reactor) -> T + Send + Sync + 'static,
        then: impl FnOnce(&mut Server, ReqId, Vec<Option<T>>) -> Step + Send + 'static,
    ) -> Step {
        type Then<T> = Box<dyn FnOnce(&mut Server, ReqId, Vec<Option<T>>) -> Step + Send>;
        struct Acc<T> {
            answers: Vec<Option<T>>,
            left: usize,
            then: Option<Then<T>>,
        }
        let handles = self.ctx.shared.reactors.clone();
        let n = handles.len();
        if n == 0 {
            return then(self, id, Vec::new());
        }
        let acc = Arc::new(Mutex::new(Acc::<T> {
            answers: (0..n).map(|_| None).collect(),
            left: n,
            then: Some(Box::new(then)),
        }));
        let call = Arc::new(call);
        for (i, h) in handles.iter().enumerate() {
            let acc = acc.clone();
            let r = self.resume(id);
            let reply = Reply::new(move |v: Option<T>| {
                let mut a = acc.lock().unwrap_or_else(|p| p.into_inner());
                a.answers[i] = v;
                a.left -= 1;
                if a.left == 0 {
                    let answers = std::mem::take(&mut a.answers);
                    if let Some(then) = a.then.take() {
                        r.then(move |srv, id| then(srv, id, answers));
                    }
                }
            });
            let call = call.clone();
            h.send(Msg::Call(Box::new(move |reactor: &mut Reactor| reply.send(call(reactor)))));
        }
        Step::Wait
    }
}
