//! What copying a value or a row copies, in bytes, as the repetition
//! guards ([`crate::repeat`]) and the capped functions count it.

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::DataType;
use datafusion::logical_expr::ColumnarValue;

/// Adds to `out[i]` the bytes row `i` of `a` holds: what copying the row copies.
pub fn add_widths(a: &dyn Array, out: &mut [u64]) {
    let n = a.len().min(out.len());
    let ranges = |offsets: &mut dyn Iterator<Item = (usize, usize)>, child: &dyn Array, each: u64, out: &mut [u64]| {
        let mut inner = vec![0u64; child.len()];
        add_widths(child, &mut inner);
        let mut prefix = Vec::with_capacity(inner.len() + 1);
        prefix.push(0u64);
        for w in inner {
            prefix.push(prefix.last().copied().unwrap_or(0).saturating_add(w));
        }
        for (o, (start, end)) in out.iter_mut().zip(offsets) {
            let (s, e) = (start.min(child.len()), end.min(child.len()));
            *o = o.saturating_add(each).saturating_add(prefix[e.max(s)] - prefix[s]);
        }
    };
    match a.data_type() {
        DataType::Null => {}
        DataType::Utf8 | DataType::Binary => {
            let offsets = match a.data_type() {
                DataType::Utf8 => a.as_string::<i32>().value_offsets(),
                _ => a.as_binary::<i32>().value_offsets(),
            };
            for (o, w) in out.iter_mut().zip(offsets.windows(2)) {
                *o = o.saturating_add(4 + (w[1] - w[0]).max(0) as u64);
            }
        }
        DataType::LargeUtf8 | DataType::LargeBinary => {
            let offsets = match a.data_type() {
                DataType::LargeUtf8 => a.as_string::<i64>().value_offsets(),
                _ => a.as_binary::<i64>().value_offsets(),
            };
            for (o, w) in out.iter_mut().zip(offsets.windows(2)) {
                *o = o.saturating_add(8 + (w[1] - w[0]).max(0) as u64);
            }
        }
        DataType::Utf8View | DataType::BinaryView => {
            let views = match a.data_type() {
                DataType::Utf8View => a.as_string_view().views(),
                _ => a.as_binary_view().views(),
            };
            for (o, v) in out.iter_mut().zip(views.iter()) {
                let len = *v as u32 as u64;
                *o = o.saturating_add(16 + if len > 12 { len } else { 0 });
            }
        }
        DataType::List(_) => {
            let l = a.as_list::<i32>();
            let mut it = l.value_offsets().windows(2).map(|w| (w[0].max(0) as usize, w[1].max(0) as usize));
            ranges(&mut it, l.values().as_ref(), 4, out);
        }
        DataType::LargeList(_) => {
            let l = a.as_list::<i64>();
            let mut it = l.value_offsets().windows(2).map(|w| (w[0].max(0) as usize, w[1].max(0) as usize));
            ranges(&mut it, l.values().as_ref(), 8, out);
        }
        DataType::Map(..) => {
            let m = a.as_map();
            let mut it = m.value_offsets().windows(2).map(|w| (w[0].max(0) as usize, w[1].max(0) as usize));
            ranges(&mut it, m.entries(), 4, out);
        }
        DataType::FixedSizeList(_, size) => {
            let l = a.as_fixed_size_list();
            let size = (*size).max(0) as usize;
            let mut it = (0..n).map(|i| (i * size, (i + 1) * size));
            ranges(&mut it, l.values().as_ref(), 0, out);
        }
        DataType::Struct(_) => {
            for c in a.as_struct().columns() {
                add_widths(c.as_ref(), out);
            }
        }
        DataType::Dictionary(..) => {
            let d = a.as_any_dictionary();
            let mut values = vec![0u64; d.values().len()];
            add_widths(d.values().as_ref(), &mut values);
            let key = d.keys().data_type().primitive_width().unwrap_or(8) as u64;
            for (o, k) in out.iter_mut().zip(d.normalized_keys()) {
                *o = o.saturating_add(key + values.get(k).copied().unwrap_or(0));
            }
        }
        DataType::Boolean => out.iter_mut().for_each(|o| *o = o.saturating_add(1)),
        DataType::FixedSizeBinary(w) => out.iter_mut().for_each(|o| *o = o.saturating_add((*w).max(0) as u64)),
        t => {
            // Fixed-width types; anything else (unions, run ends) at its average.
            let w = t
                .primitive_width()
                .map(|w| w as u64)
                .unwrap_or_else(|| (a.get_array_memory_size() as u64).div_ceil(a.len().max(1) as u64));
            out.iter_mut().for_each(|o| *o = o.saturating_add(w));
        }
    }
}

/// The bytes each row of `a` holds.
pub fn widths(a: &dyn Array) -> Vec<u64> {
    let mut out = vec![0u64; a.len()];
    add_widths(a, &mut out);
    out
}

/// The bytes each row of `batch` holds, over `columns` (all when None).
pub fn row_widths(batch: &RecordBatch, columns: Option<&[usize]>) -> Vec<u64> {
    let mut out = vec![0u64; batch.num_rows()];
    match columns {
        None => batch.columns().iter().for_each(|c| add_widths(c.as_ref(), &mut out)),
        Some(cols) => {
            cols.iter().filter_map(|&i| batch.columns().get(i)).for_each(|c| add_widths(c.as_ref(), &mut out))
        }
    }
    out
}

/// The bytes a value holds.
pub fn value_width(v: &ColumnarValue) -> u64 {
    match v {
        ColumnarValue::Scalar(s) => s.size() as u64,
        ColumnarValue::Array(a) => {
            let mut w = vec![0u64; a.len()];
            add_widths(a.as_ref(), &mut w);
            w.into_iter().max().unwrap_or(0)
        }
    }
}

/// Elements of each row of a list argument, nested lists counted by their
/// own elements (what `array_to_string` writes a separator between).
pub fn leaf_counts(a: &dyn Array) -> Vec<u64> {
    fn leaves(values: &dyn Array) -> Vec<u64> {
        match values.data_type() {
            DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..) => leaf_counts(values),
            _ => vec![1; values.len()],
        }
    }
    let ranges: Vec<(usize, usize)> = match a.data_type() {
        DataType::List(_) => {
            a.as_list::<i32>().value_offsets().windows(2).map(|w| (w[0] as usize, w[1] as usize)).collect()
        }
        DataType::LargeList(_) => {
            a.as_list::<i64>().value_offsets().windows(2).map(|w| (w[0] as usize, w[1] as usize)).collect()
        }
        DataType::FixedSizeList(_, n) => {
            let n = (*n).max(0) as usize;
            (0..a.len()).map(|i| (i * n, (i + 1) * n)).collect()
        }
        _ => return vec![1; a.len()],
    };
    let values: ArrayRef = match a.data_type() {
        DataType::List(_) => a.as_list::<i32>().values().clone(),
        DataType::LargeList(_) => a.as_list::<i64>().values().clone(),
        _ => a.as_fixed_size_list().values().clone(),
    };
    let inner = leaves(values.as_ref());
    let mut prefix = Vec::with_capacity(inner.len() + 1);
    prefix.push(0u64);
    for n in inner {
        prefix.push(prefix.last().copied().unwrap_or(0).saturating_add(n));
    }
    ranges
        .into_iter()
        .map(|(s, e)| {
            let (s, e) = (s.min(prefix.len() - 1), e.min(prefix.len() - 1));
            prefix[e.max(s)] - prefix[s]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::ArrayRef;

    use super::*;

    #[test]
    fn widths_count_what_copying_a_row_copies() {
        let s: ArrayRef = Arc::new(arrow_array::StringArray::from(vec![Some("abc"), None, Some("")]));
        let mut w = vec![0; 3];
        add_widths(s.as_ref(), &mut w);
        assert_eq!(w, vec![7, 4, 4]);
        // A slice counts its own rows, not its parent's buffer.
        let big: ArrayRef = Arc::new(arrow_array::StringArray::from(vec!["x".repeat(1000), "y".to_string()]));
        let mut w = vec![0; 1];
        add_widths(big.slice(1, 1).as_ref(), &mut w);
        assert_eq!(w, vec![5]);
        let l: ArrayRef =
            Arc::new(arrow_array::ListArray::from_iter_primitive::<arrow_array::types::Int64Type, _, _>(vec![
                Some(vec![Some(1), Some(2)]),
                Some(vec![]),
            ]));
        let mut w = vec![0; 2];
        add_widths(l.as_ref(), &mut w);
        assert_eq!(w, vec![4 + 16, 4]);
    }
}
