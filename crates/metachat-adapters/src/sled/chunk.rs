//! Chunks: how earlier versions of this store kept events, as the values
//! under `e` + first position in sled, each holding the records of
//! consecutive global positions as frames of a 4-byte big-endian length and
//! a [wire](metachat_core::event::wire) record (which carries its own CRC).
//! Read only to move such a database's events into the segment log.

use metachat_core::Error;

use super::error::corrupted;

/// sled's log segment size set by this adapter (sled's default is 512 KiB;
/// a database must be reopened with the same size).
pub(crate) const SEGMENT_SIZE: usize = 8 << 20;

/// Appends one frame (length + record) to `chunk`. `None` if the record is
/// larger than a frame can describe (4 GiB).
#[cfg(test)]
pub(crate) fn push(chunk: &mut Vec<u8>, record: &[u8]) -> Option<()> {
    let len = u32::try_from(record.len()).ok()?;
    chunk.extend_from_slice(&len.to_be_bytes());
    chunk.extend_from_slice(record);
    Some(())
}

/// The frames of a chunk whose first record is at `first`: `(position, record)`.
pub(crate) struct Frames<'a> {
    position: u64,
    rest: &'a [u8],
}

impl<'a> Frames<'a> {
    pub(crate) fn new(first: u64, chunk: &'a [u8]) -> Self {
        Frames {
            position: first,
            rest: chunk,
        }
    }

    /// The position the next frame would have (after the last: one past the chunk).
    pub(crate) fn next_position(&self) -> u64 {
        self.position
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = Result<(u64, &'a [u8]), Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let position = self.position;
        let frame = self.rest.split_first_chunk::<4>().and_then(|(len, rest)| {
            let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
            (rest.len() >= len).then_some((len, rest))
        });
        let Some((len, rest)) = frame else {
            self.rest = &[];
            return Some(Err(corrupted(
                format!("global position {position}"),
                "chunk frame truncated",
            )));
        };
        let (record, rest) = rest.split_at(len);
        self.rest = rest;
        self.position += 1;
        Some(Ok((position, record)))
    }
}

/// Number of frames in a chunk (checks that the frames fill it exactly).
pub(crate) fn count(first: u64, chunk: &[u8]) -> Result<u64, Error> {
    let mut frames = Frames::new(first, chunk);
    for f in frames.by_ref() {
        f?;
    }
    Ok(frames.next_position() - first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_truncation_is_corrupted() {
        let mut c = Vec::new();
        push(&mut c, b"abc").unwrap();
        push(&mut c, b"").unwrap();
        push(&mut c, b"zz").unwrap();
        let got: Vec<_> = Frames::new(10, &c).map(|f| f.unwrap()).collect();
        assert_eq!(
            got,
            vec![(10, &b"abc"[..]), (11, &b""[..]), (12, &b"zz"[..])]
        );
        assert_eq!(count(10, &c).unwrap(), 3);
        for cut in 1..c.len() {
            if cut == 7 || cut == 11 {
                continue; // frame boundaries
            }
            let err = count(10, &c[..cut]).unwrap_err();
            assert!(matches!(err, Error::Corrupted { .. }), "{cut}: {err}");
        }
    }
}
