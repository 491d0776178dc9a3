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

/// Decodes what [`encode_wire`] made (or, with `zstd` false, a plain IPC
/// stream), refusing to inflate past `max_bytes`.
pub fn decode_wire(bytes: &[u8], zstd: bool, max_bytes: usize) -> Result<(SchemaRef, Vec<RecordBatch>), ArrowError> {
    if !zstd {
        return decode(bytes);
    }
    use std::io::Read;
    let mut plain = Vec::new();
    zstd::stream::read::Decoder::new(bytes)
        .and_then(|d| d.take(max_bytes as u64 + 1).read_to_end(&mut plain))
        .map_err(|e| ArrowError::ExternalError(Box::new(e)))?;
    if plain.len() > max_bytes {
        return Err(ArrowError::InvalidArgumentError(format!("batch inflates beyond {max_bytes} bytes")));
    }
    decode(&plain)
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
        let wire = encode_wire(&schema, &[RecordBatch::new_empty(schema.clone())]).unwrap();
        crate::tables::CRAWL_ERRORS.check(&decode_wire(&wire, true, 1 << 20).unwrap().0).unwrap();
        assert!(decode_wire(&wire, true, 16).is_err(), "inflating past the limit is refused");
        assert!(decode_wire(&bytes, true, 1 << 20).is_err(), "plain IPC is not a zstd frame");
    }
}
