//! [`FrameBuilder`]: a frame built in place, each record written straight
//! into it (no record of its own to allocate and copy).

use super::{crc, SegmentError, HEADER};

/// One batch's frame under construction (the layout is in the
/// [module docs](super)); [`SegmentLog::append_frame`](super::SegmentLog::append_frame)
/// writes it.
#[derive(Debug)]
pub struct FrameBuilder {
    buf: Vec<u8>,
    count: u32,
    too_large: bool,
}

impl FrameBuilder {
    /// An empty frame with room for `bytes` of records.
    pub fn with_capacity(bytes: usize) -> Self {
        let mut buf = Vec::with_capacity(HEADER + 4 + bytes);
        // Length, CRC and record count, filled in by `finish`.
        buf.resize(HEADER + 4, 0);
        FrameBuilder {
            buf,
            count: 0,
            too_large: false,
        }
    }

    /// Appends one record, written by `write` onto the end of the buffer it
    /// is given. Returns the record's length.
    pub fn record(&mut self, write: impl FnOnce(&mut Vec<u8>)) -> usize {
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]);
        write(&mut self.buf);
        let len = self.buf.len() - at - 4;
        match u32::try_from(len) {
            Ok(l) => self.buf[at..at + 4].copy_from_slice(&l.to_be_bytes()),
            Err(_) => self.too_large = true,
        }
        self.count = self.count.saturating_add(1);
        len
    }

    /// The whole frame, checked: at least one record, and a body whose
    /// length fits the header.
    pub(super) fn finish(mut self) -> Result<Vec<u8>, SegmentError> {
        let body_len = self.buf.len() - HEADER;
        let max = u32::MAX as usize - HEADER;
        let n = u32::try_from(body_len).ok().filter(|_| !self.too_large);
        let (Some(n), true) = (n, self.count > 0) else {
            return Err(SegmentError::BadBatch { len: body_len, max });
        };
        self.buf[..4].copy_from_slice(&n.to_be_bytes());
        self.buf[HEADER..HEADER + 4].copy_from_slice(&self.count.to_be_bytes());
        let sum = crc(&self.buf[..4], &self.buf[HEADER..]);
        self.buf[4..HEADER].copy_from_slice(&sum.to_be_bytes());
        Ok(self.buf)
    }
}
