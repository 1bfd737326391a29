//! The packed wire form of a batch (`PackedItems` in backend.proto): every
//! item's bytes in one buffer, with one item size or Arrow-style offsets,
//! and attributes only for the items that have any. Packing copies each
//! payload once; unpacking an answer slices the one buffer without a copy.

use std::collections::HashMap;

use bytes::BytesMut;

use crate::{
    contract::{BatchItem, ItemOutput},
    pb,
};

/// Packs `items` (in the order given; position i is the i-th).
///
/// # Errors
/// A batch whose bytes do not fit the 32-bit offsets (over 4 GiB; the
/// server's message limit keeps batches far below that).
pub(super) fn pack<'a>(
    items: impl ExactSizeIterator<Item = &'a BatchItem> + Clone,
) -> Result<pb::PackedItems, String> {
    let count = items.len();
    let total: usize = items.clone().map(|item| item.payload.len()).sum();
    let too_big = || format!("a batch of {total} bytes does not fit packed offsets");
    let total_u32 = u32::try_from(total).map_err(|_| too_big())?;
    let mut sizes = items.clone().map(|item| item.payload.len());
    let first = sizes.next().unwrap_or(0);
    let uniform = first > 0 && sizes.all(|size| size == first);
    let mut data = BytesMut::with_capacity(total);
    let mut offsets = Vec::new();
    if !uniform && total > 0 {
        offsets.reserve(count + 1);
        offsets.push(0);
    }
    let mut meta = Vec::new();
    for (position, item) in items.enumerate() {
        data.extend_from_slice(&item.payload);
        if !offsets.is_empty() {
            // data.len() ≤ total, which fits u32.
            offsets.push(u32::try_from(data.len()).unwrap_or(total_u32));
        }
        if !item.attributes.is_empty() || item.trace_id.is_some() {
            meta.push(pb::ItemMeta {
                position: u32::try_from(position).map_err(|_| too_big())?,
                attributes: item.attributes.clone(),
                trace_id: item.trace_id.clone().unwrap_or_default(),
            });
        }
    }
    Ok(pb::PackedItems {
        count: u32::try_from(count).map_err(|_| too_big())?,
        data: data.freeze(),
        item_size: if uniform {
            u32::try_from(first).map_err(|_| too_big())?
        } else {
            0
        },
        offsets,
        meta,
    })
}

/// The items of a packed buffer, each a slice of it (no copy), with the
/// attributes its `meta` gives them.
///
/// # Errors
/// What is wrong with the shape, in words.
pub(super) fn unpack(packed: pb::PackedItems) -> Result<Vec<ItemOutput>, String> {
    let count = packed.count as usize;
    let len = packed.data.len();
    let bounds = item_bounds(count, len, packed.item_size as usize, &packed.offsets)?;
    let mut attributes: Vec<HashMap<String, String>> = vec![HashMap::new(); count];
    for meta in packed.meta {
        let slot = attributes
            .get_mut(meta.position as usize)
            .ok_or_else(|| format!("meta for position {}, but count is {count}", meta.position))?;
        *slot = meta.attributes;
    }
    Ok(bounds
        .into_iter()
        .zip(attributes)
        .map(|((start, end), attributes)| ItemOutput {
            payload: packed.data.slice(start..end),
            attributes,
        })
        .collect())
}

/// Where each of `count` items lies in a buffer of `len` bytes.
fn item_bounds(
    count: usize,
    len: usize,
    item_size: usize,
    offsets: &[u32],
) -> Result<Vec<(usize, usize)>, String> {
    match (item_size, offsets.is_empty()) {
        (0, true) if len == 0 => Ok(vec![(0, 0); count]),
        (0, true) => Err(format!(
            "{len} bytes of data but neither item_size nor offsets"
        )),
        (_, false) if item_size > 0 => Err("both item_size and offsets are set".to_owned()),
        (size, true) => {
            if count.checked_mul(size) != Some(len) {
                return Err(format!(
                    "item_size {size} × count {count} is not the {len} bytes of data"
                ));
            }
            Ok((0..count).map(|i| (i * size, (i + 1) * size)).collect())
        }
        (_, false) => {
            if offsets.len() != count + 1 {
                return Err(format!(
                    "{} offsets for {count} items (count + 1 expected)",
                    offsets.len()
                ));
            }
            if offsets[0] != 0 {
                return Err(format!("offsets start at {}, not 0", offsets[0]));
            }
            let last = offsets[count] as usize;
            if last != len {
                return Err(format!("offsets end at {last}, but data has {len} bytes"));
            }
            let mut bounds = Vec::with_capacity(count);
            for (i, pair) in offsets.windows(2).enumerate() {
                let (start, end) = (pair[0] as usize, pair[1] as usize);
                if end < start {
                    return Err(format!(
                        "offsets decrease at item {i} ({start} then {end}): items would overlap"
                    ));
                }
                bounds.push((start, end));
            }
            Ok(bounds)
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use proptest::{collection::vec, prelude::*};

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(crate::fuzz_cases()))]
        /// Fuzz: any packed answer a backend may send is refused in words
        /// or cut into exactly `count` in-bounds slices, never a panic.
        #[test]
        fn fuzz_unpack(
            count in 0u32..300,
            item_size in prop_oneof![Just(0u32), 0u32..64, any::<u32>()],
            data in vec(any::<u8>(), 0..2048),
            offsets in prop_oneof![vec(any::<u32>(), 0..40), vec(0u32..2048, 0..40).prop_map(|mut v| { v.sort_unstable(); v })],
            meta in vec((prop_oneof![0u32..300, any::<u32>()], "[a-z]{0,3}"), 0..4),
        ) {
            let len = data.len();
            let packed = pb::PackedItems {
                count,
                data: Bytes::from(data),
                item_size,
                offsets,
                meta: meta
                    .into_iter()
                    .map(|(position, key)| pb::ItemMeta {
                        position,
                        attributes: HashMap::from([(key, "v".to_owned())]),
                        trace_id: String::new(),
                    })
                    .collect(),
            };
            if let Ok(items) = unpack(packed) {
                prop_assert_eq!(items.len(), count as usize);
                prop_assert!(items.iter().map(|i| i.payload.len()).sum::<usize>() <= len);
            }
        }
    }

    fn item(payload: &'static [u8]) -> BatchItem {
        BatchItem {
            payload: Bytes::from_static(payload),
            attributes: HashMap::new(),
            trace_id: None,
            cost: 1,
        }
    }

    fn packed(count: u32, data: &'static [u8], item_size: u32, offsets: &[u32]) -> pb::PackedItems {
        pb::PackedItems {
            count,
            data: Bytes::from_static(data),
            item_size,
            offsets: offsets.to_vec(),
            meta: Vec::new(),
        }
    }

    fn payloads(p: pb::PackedItems) -> Result<Vec<Bytes>, String> {
        unpack(p).map(|items| items.into_iter().map(|o| o.payload).collect())
    }

    #[test]
    fn items_of_one_size_pack_with_item_size() {
        let items = [item(b"ab"), item(b"cd"), item(b"ef")];
        let p = pack(items.iter()).unwrap();
        assert_eq!((p.count, p.item_size), (3, 2));
        assert!(p.offsets.is_empty() && p.meta.is_empty());
        assert_eq!(&p.data[..], b"abcdef");
        assert_eq!(payloads(p).unwrap(), vec!["ab", "cd", "ef"]);
    }

    #[test]
    fn items_of_different_sizes_pack_with_offsets() {
        let mut tagged = item(b"");
        tagged.attributes.insert("k".into(), "v".into());
        tagged.trace_id = Some("t-1".into());
        let items = [item(b"a"), tagged, item(b"bcd")];
        let p = pack(items.iter()).unwrap();
        assert_eq!((p.count, p.item_size), (3, 0));
        assert_eq!(p.offsets, vec![0, 1, 1, 4]);
        assert_eq!(p.meta.len(), 1);
        assert_eq!(
            (p.meta[0].position, p.meta[0].trace_id.as_str()),
            (1, "t-1")
        );
        let back = unpack(p).unwrap();
        assert_eq!(back[1].attributes["k"], "v");
        assert_eq!(
            back.iter().map(|o| o.payload.clone()).collect::<Vec<_>>(),
            vec!["a", "", "bcd"]
        );
    }

    #[test]
    fn empty_items_pack_to_nothing() {
        let items = [item(b""), item(b"")];
        let p = pack(items.iter()).unwrap();
        assert_eq!(
            (p.count, p.item_size, p.offsets.len(), p.data.len()),
            (2, 0, 0, 0)
        );
        assert_eq!(payloads(p).unwrap(), vec!["", ""]);
        assert!(pack([].iter()).unwrap().count == 0);
    }

    #[test]
    fn unpacked_items_share_the_buffer() {
        let p = packed(2, b"abcd", 2, &[]);
        let base = p.data.as_ptr();
        let back = payloads(p).unwrap();
        assert_eq!(back[1].as_ptr(), base.wrapping_add(2));
    }

    #[test]
    fn malformed_shapes_are_refused_with_the_reason() {
        let err = |p| payloads(p).unwrap_err();
        assert!(err(packed(3, b"abcd", 2, &[])).contains("item_size 2 × count 3"));
        assert!(err(packed(2, b"abc", 2, &[])).contains("is not the 3 bytes"));
        assert!(err(packed(2, b"abcd", 0, &[0, 2])).contains("2 offsets for 2 items"));
        assert!(err(packed(2, b"abcd", 0, &[1, 2, 4])).contains("start at 1"));
        assert!(err(packed(2, b"abcd", 0, &[0, 2, 3])).contains("end at 3"));
        assert!(err(packed(2, b"abcd", 0, &[0, 2, 9])).contains("end at 9"));
        assert!(err(packed(3, b"abcd", 0, &[0, 3, 1, 4])).contains("overlap"));
        assert!(err(packed(2, b"abcd", 2, &[0, 2, 4])).contains("both"));
        assert!(err(packed(2, b"abcd", 0, &[])).contains("neither"));
        let mut p = packed(1, b"a", 1, &[]);
        p.meta.push(pb::ItemMeta {
            position: 5,
            ..Default::default()
        });
        assert!(err(p).contains("meta for position 5"));
    }
}
