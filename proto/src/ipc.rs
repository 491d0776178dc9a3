//! Arrow IPC framing shared by agent and server: record batches in, bytes out, and back.

use arrow_array::RecordBatch;
use arrow_ipc::reader::StreamReader;
use arrow_ipc::writer::StreamWriter;
use arrow_schema::{ArrowError, SchemaRef};

/// Encodes `batches` (all of `schema`) as one Arrow IPC stream.
pub fn encode(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Vec<u8>, ArrowError> {
    let mut buf = Vec::new();
    {
        let mut w = StreamWriter::try_new(&mut buf, schema)?;
        for b in batches {
            w.write(b)?;
        }
        w.finish()?;
    }
    Ok(buf)
}

/// Encodes `batches` for the wire and the agent's spool: an Arrow IPC stream
/// without the column descriptions (the receiver has them from
/// [`crate::tables`], and on a small batch they would outweigh the rows),
/// compressed as one zstd frame. Whole-stream compression beats Arrow's
/// per-buffer compression on the many small batches change-only sends make.
pub fn encode_wire(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Vec<u8>, ArrowError> {
    let bare: SchemaRef = std::sync::Arc::new(arrow_schema::Schema::new(
        schema.fields().iter().map(|f| f.as_ref().clone().with_metadata(Default::default())).collect::<Vec<_>>(),
    ));
    let bare_batches = batches
        .iter()
        .map(|b| RecordBatch::try_new(bare.clone(), b.columns().to_vec()))
        .collect::<Result<Vec<_>, _>>()?;
    let plain = encode(&bare, &bare_batches)?;
    zstd::bulk::compress(&plain, 3).map_err(|e| ArrowError::ExternalError(Box::new(e)))
}

/// The bytes a wire batch says it inflates to: its own length uncompressed,
/// the zstd frame's declared size, or None when the frame declares none.
pub fn inflated_size(bytes: &[u8], zstd: bool) -> Option<u64> {
    if !zstd {
        return Some(bytes.len() as u64);
    }
    zstd::zstd_safe::get_frame_content_size(bytes).ok().flatten()
}

/// Decodes what [`encode_wire`] made (or, with `zstd` false, a plain IPC
/// stream), refusing to inflate past `max_bytes`.
pub fn decode_wire(bytes: &[u8], zstd: bool, max_bytes: usize) -> Result<(SchemaRef, Vec<RecordBatch>), ArrowError> {
    if !zstd {
        return decode(bytes);
    }
    let too_big = || ArrowError::InvalidArgumentError(format!("batch inflates beyond {max_bytes} bytes"));
    let plain = match zstd::zstd_safe::get_frame_content_size(bytes) {
        // The agent's frames state their size: one exact allocation, and a
        // decompression context reused per thread (creating one per batch and
        // growing the output as it streams cost a third of server ingest CPU).
        Ok(Some(n)) => {
            if n > max_bytes as u64 {
                return Err(too_big());
            }
            thread_local! {
                static DCTX: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { std::cell::RefCell::new(None) };
            }
            DCTX.with_borrow_mut(|d| {
                let d = match d {
                    Some(d) => d,
                    None => d.insert(zstd::bulk::Decompressor::new()?),
                };
                d.decompress(bytes, n as usize)
            })
            .map_err(|e| ArrowError::ExternalError(Box::new(e)))?
        }
        _ => {
            use std::io::Read;
            let mut plain = Vec::new();
            zstd::stream::read::Decoder::new(bytes)
                .and_then(|d| d.take(max_bytes as u64 + 1).read_to_end(&mut plain))
                .map_err(|e| ArrowError::ExternalError(Box::new(e)))?;
            if plain.len() > max_bytes {
                return Err(too_big());
            }
            plain
        }
    };
    decode_owned(plain)
}

/// Decodes one Arrow IPC stream held in `plain`, the arrays pointing into it
/// rather than copied out (the stream reader's copy of every message body into
/// fresh zeroed memory cost a quarter of server ingest CPU).
fn decode_owned(plain: Vec<u8>) -> Result<(SchemaRef, Vec<RecordBatch>), ArrowError> {
    let mut buf = arrow_buffer::Buffer::from_vec(plain);
    let mut decoder = arrow_ipc::reader::StreamDecoder::new();
    let mut batches = Vec::new();
    while let Some(b) = decoder.decode(&mut buf)? {
        batches.push(b);
    }
    decoder.finish()?;
    let schema = decoder.schema().ok_or_else(|| ArrowError::IpcError("stream without a schema".into()))?;
    Ok((schema, batches))
}

/// Decodes one Arrow IPC stream into its schema and batches.
pub fn decode(bytes: &[u8]) -> Result<(SchemaRef, Vec<RecordBatch>), ArrowError> {
    let reader = StreamReader::try_new(bytes, None)?;
    let schema = reader.schema();
    let batches = reader.collect::<Result<Vec<_>, _>>()?;
    Ok((schema, batches))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_rows_and_schema() {
        let schema = crate::tables::CRAWL_ERRORS.schema();
        let batch = RecordBatch::new_empty(schema.clone());
        let bytes = encode(&schema, &[batch]).unwrap();
        let (s, b) = decode(&bytes).unwrap();
        assert_eq!(s.fields(), schema.fields());
        assert_eq!(b.iter().map(|b| b.num_rows()).sum::<usize>(), 0);
        assert!(decode(&bytes[..bytes.len() / 2]).is_err());
        assert!(decode_owned(bytes[..bytes.len() / 2].to_vec()).is_err(), "a cut stream is an error");
        assert!(decode_owned(Vec::new()).is_err(), "no schema");
        let wire = encode_wire(&schema, &[RecordBatch::new_empty(schema.clone())]).unwrap();
        crate::tables::CRAWL_ERRORS.check(&decode_wire(&wire, true, 1 << 20).unwrap().0).unwrap();
        assert!(decode_wire(&wire, true, 16).is_err(), "inflating past the limit is refused");
        assert!(decode_wire(&bytes, true, 1 << 20).is_err(), "plain IPC is not a zstd frame");
        // A frame without a stated size takes the streaming path, under the same limit.
        let plain = encode(&schema, &[RecordBatch::new_empty(schema.clone())]).unwrap();
        let mut unsized_frame = Vec::new();
        {
            let mut e = zstd::stream::write::Encoder::new(&mut unsized_frame, 3).unwrap();
            e.include_contentsize(false).unwrap();
            std::io::Write::write_all(&mut e, &plain).unwrap();
            e.finish().unwrap();
        }
        assert_eq!(zstd::zstd_safe::get_frame_content_size(&unsized_frame).unwrap(), None);
        assert!(zstd::zstd_safe::get_frame_content_size(&wire).unwrap().is_some());
        crate::tables::CRAWL_ERRORS.check(&decode_wire(&unsized_frame, true, 1 << 20).unwrap().0).unwrap();
        assert!(decode_wire(&unsized_frame, true, 16).is_err());
        // A frame that lies about its size is an error, not a short read.
        let mut lying = wire.clone();
        let n = lying.len();
        lying.truncate(n - 4);
        assert!(decode_wire(&lying, true, 1 << 20).is_err());
    }
}
