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

/// Encodes like [`encode`] for the wire and the agent's spool: each batch's
/// buffers zstd-compressed (Arrow IPC body compression; readers need nothing
/// special), and the schema without its column descriptions — the receiver
/// has them from [`crate::tables`], and on a small batch they would outweigh
/// the rows.
pub fn encode_zstd(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Vec<u8>, ArrowError> {
    use arrow_ipc::writer::IpcWriteOptions;
    let bare: SchemaRef = std::sync::Arc::new(arrow_schema::Schema::new(
        schema.fields().iter().map(|f| f.as_ref().clone().with_metadata(Default::default())).collect::<Vec<_>>(),
    ));
    let opts = IpcWriteOptions::default().try_with_compression(Some(arrow_ipc::CompressionType::ZSTD))?;
    let mut buf = Vec::new();
    {
        let mut w = StreamWriter::try_new_with_options(&mut buf, &bare, opts)?;
        for b in batches {
            w.write(&RecordBatch::try_new(bare.clone(), b.columns().to_vec())?)?;
        }
        w.finish()?;
    }
    Ok(buf)
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
        let zstd = encode_zstd(&schema, &[RecordBatch::new_empty(schema.clone())]).unwrap();
        crate::tables::CRAWL_ERRORS.check(&decode(&zstd).unwrap().0).unwrap();
    }
}
