//! One round of input requests a call put to its client: a slot per request, filled by the
//! client's answers, each charged to the call's event budget while the round lives.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};

use serde_json::value::RawValue;

use crate::calls::inflight::CallState;
use crate::wire::jsonrpc::RpcError;

/// The client's answer to one input request: its result, or the error it answered with.
pub type InputAnswer = Result<Box<RawValue>, RpcError>;

/// The answers to one round of input requests, as they arrive from the client.
pub struct InputRound {
    /// The call they serve: its budget holds the answers.
    call: Rc<CallState>,
    answers: RefCell<Vec<Option<InputAnswer>>>,
    /// Bytes of answers charged to the call's budget, released when the round is dropped.
    charged: Cell<usize>,
    /// An answer did not fit the call's budget.
    overflowed: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

impl InputRound {
    pub fn new(call: Rc<CallState>, requests: usize) -> InputRound {
        InputRound {
            call,
            answers: RefCell::new((0..requests).map(|_| None).collect()),
            charged: Cell::new(0),
            overflowed: Cell::new(false),
            waker: Cell::new(None),
        }
    }

    /// Takes the client's `answer` to request `slot` of the round.
    pub fn answer(&self, slot: u32, answer: InputAnswer) {
        let bytes = answer.as_ref().map_or(0, |result| result.get().len());
        // Past the budget the answer is dropped, not held: the round ends with an error.
        match self.call.charge(bytes) {
            false => self.overflowed.set(true),
            true => {
                self.charged.set(self.charged.get() + bytes);
                if let Some(entry) = self.answers.borrow_mut().get_mut(slot as usize) {
                    *entry = Some(answer);
                }
            }
        }
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }

    /// Waits until every request is answered, and takes the answers in slot order; `None`
    /// when an answer overflowed the budget.
    pub async fn complete(&self) -> Option<Vec<InputAnswer>> {
        poll_fn(|cx| {
            if self.overflowed.get() {
                return Poll::Ready(None);
            }
            let mut answers = self.answers.borrow_mut();
            if answers.iter().all(Option::is_some) {
                return Poll::Ready(Some(answers.iter_mut().filter_map(Option::take).collect()));
            }
            self.waker.set(Some(cx.waker().clone()));
            Poll::Pending
        })
        .await
    }
}

impl Drop for InputRound {
    fn drop(&mut self) {
        self.call.release(self.charged.get());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::jsonrpc;

    fn answer(round: &InputRound, slot: u32, message: &str) {
        let depth_max = crate::config::bounds::JSON_DEPTH_MAX.default as u32;
        let Ok(jsonrpc::Message::Response { outcome, .. }) =
            jsonrpc::parse(message.as_bytes(), depth_max)
        else {
            panic!("not a response: {message}");
        };
        round.answer(slot, outcome.answer_or_internal());
    }

    #[test]
    fn a_round_completes_when_every_slot_is_answered_within_the_call_budget() {
        let call = Rc::new(CallState::new(64));
        let round = InputRound::new(call.clone(), 2);
        answer(
            &round,
            1,
            r#"{"jsonrpc":"2.0","id":"sgr-0-1","result":{"roots":[]}}"#,
        );
        assert!(round.answers.borrow()[0].is_none());
        answer(
            &round,
            0,
            r#"{"jsonrpc":"2.0","id":"sgr-0-0","error":{"code":-1,"message":"no"}}"#,
        );
        let answers = round.answers.borrow();
        assert_eq!(
            answers[1].as_ref().unwrap().as_ref().unwrap().get(),
            r#"{"roots":[]}"#
        );
        assert_eq!(answers[0].as_ref().unwrap().as_ref().unwrap_err().code, -1);
        drop(answers);
        assert!(!round.overflowed.get());
        let big = format!(
            r#"{{"jsonrpc":"2.0","id":"sgr-0-2","result":{{"t":"{}"}}}}"#,
            "x".repeat(64)
        );
        answer(&round, 0, &big);
        assert!(round.overflowed.get());
        drop(round);
        assert!(call.charge(64), "a dropped round releases what it charged");
    }
}
