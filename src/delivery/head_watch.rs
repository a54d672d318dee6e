//! The status line of answers ureq refuses for their number of header fields (more than 128, a
//! limit it has no setting for). Such an answer's status still says what became of the
//! request, as keyhook's own client reads it: a 2xx is delivered, not sent again.

use std::cell::Cell;

use ureq::unversioned::transport::{Buffers, ConnectionDetails, Connector, NextTimeout, Transport};

use super::plain::status_line;

thread_local! {
    /// The status of the last final answer whose head began to arrive on this thread: ureq
    /// sends and reads on the thread that asked.
    static SEEN: Cell<Option<u16>> = const { Cell::new(None) };
}

/// Forgets the status seen on this thread, before a request is sent.
pub(super) fn forget() {
    SEEN.set(None);
}

/// The status of the answer behind `error` when ureq refused it for its number of header
/// fields; `None` for any other error.
pub(super) fn refused_status(error: &ureq::Error) -> Option<u16> {
    match error {
        // ureq does not export its protocol error type: its variant's name is the test.
        ureq::Error::Protocol(error) if format!("{error:?}") == "HttpParseTooManyHeaders" => {
            SEEN.get()
        }
        _ => None,
    }
}

/// The last link of the connector chain: watches what each connection reads (past TLS).
#[derive(Debug)]
pub(super) struct HeadWatch;

impl<In: Transport> Connector<In> for HeadWatch {
    type Out = Watched<In>;

    fn connect(
        &self,
        _: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        Ok(chained.map(|inner| Watched { inner }))
    }
}

/// A connection whose input is looked at for the start of an answer's head.
#[derive(Debug)]
pub(super) struct Watched<T> {
    inner: T,
}

impl<T: Transport> Transport for Watched<T> {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.inner.transmit_output(amount, timeout)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        let progress = self.inner.await_input(timeout)?;
        if let Some(status) = final_status(self.inner.buffers().input()) {
            SEEN.set(Some(status));
        }
        Ok(progress)
    }

    fn is_open(&mut self) -> bool {
        self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

/// The status of the first final answer in `input`, past any whole 1xx interim heads, if
/// `input` begins with an answer's head.
fn final_status(mut input: &[u8]) -> Option<u16> {
    loop {
        let status = status_line(input)?;
        if status >= 200 {
            return Some(status);
        }
        let end = input.windows(4).position(|four| four == b"\r\n\r\n")?;
        input = &input[end + 4..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_final_status_is_read_past_interim_heads() {
        assert_eq!(final_status(b"HTTP/1.1 200 OK\r\nA: b"), Some(200));
        assert_eq!(
            final_status(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n"),
            Some(204)
        );
        assert_eq!(final_status(b"HTTP/1.1 100 Continue\r\n"), None);
        assert_eq!(final_status(b"{\"body\": 1}"), None);
        assert_eq!(final_status(b""), None);
    }
}
