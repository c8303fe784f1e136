//! CUDA path of [`crate::knn`]: blocked `tch` matmul + top-k on the GPU proposes candidates, which
//! are re-scored on the CPU with [`super::dot`] and selected under the same total order as the CPU
//! path (similarity desc, index asc, self first), so both paths agree except when more than
//! `MARGIN` candidates tie at a row's boundary (GPU top-k does not order ties).

use rayon::prelude::*;
use tch::{Device, Kind, Tensor};

use super::{dot, validate, KnnError, KnnResult};

/// Extra candidates fetched per row beyond `k + 1`.
const MARGIN: usize = 16;

/// Whether a CUDA device is usable.
pub fn available() -> bool {
    tch::Cuda::is_available()
}

/// Exact top-(k+1) self-join on CUDA device `device` (query rows in blocks of `block`, database in
/// chunks of `chunk` columns).
pub fn self_knn_cuda(
    data: &[f32],
    n: usize,
    dim: usize,
    k: usize,
    device: usize,
) -> Result<KnnResult, KnnError> {
    let selfs = validate(data, n, dim, k)?;
    let dev = Device::Cuda(device);
    let err = |e: tch::TchError| KnnError::Cuda(e.to_string());
    let _guard = tch::no_grad_guard();
    let db = Tensor::f_from_slice(data)
        .and_then(|t| t.f_reshape([n as i64, dim as i64]))
        .and_then(|t| t.f_to_device(dev))
        .map_err(err)?;
    let fetch = (k + 1 + MARGIN).min(n);
    let (block, chunk) = (4096usize, 65_536usize);
    let mut cand: Vec<i64> = Vec::with_capacity(n * fetch);
    for q0 in (0..n).step_by(block) {
        let qn = block.min(n - q0);
        let q = db.f_narrow(0, q0 as i64, qn as i64).map_err(err)?;
        let mut best: Option<(Tensor, Tensor)> = None;
        for c0 in (0..n).step_by(chunk) {
            let cn = chunk.min(n - c0);
            let part = db.f_narrow(0, c0 as i64, cn as i64).map_err(err)?;
            let s = q.f_matmul(&part.f_tr().map_err(err)?).map_err(err)?;
            let kk = fetch.min(cn) as i64;
            let (v, i) = s.f_topk(kk, 1, true, true).map_err(err)?;
            let i = i.f_add_scalar(c0 as i64).map_err(err)?;
            best = Some(match best {
                None => (v, i),
                Some((bv, bi)) => {
                    let v = Tensor::f_cat(&[bv, v], 1).map_err(err)?;
                    let i = Tensor::f_cat(&[bi, i], 1).map_err(err)?;
                    let kk = (fetch as i64).min(v.size()[1]);
                    let (v2, pos) = v.f_topk(kk, 1, true, true).map_err(err)?;
                    (v2, i.f_gather(1, &pos, false).map_err(err)?)
                }
            });
        }
        let (_, idx) = best.ok_or_else(|| KnnError::Cuda("empty database".into()))?;
        let idx = idx
            .f_to_device(Device::Cpu)
            .and_then(|t| t.f_to_kind(Kind::Int64))
            .and_then(|t| t.f_contiguous())
            .map_err(err)?;
        let flat: Vec<i64> =
            Vec::<i64>::try_from(idx.f_flatten(0, -1).map_err(err)?).map_err(err)?;
        cand.extend_from_slice(&flat);
    }
    let cols = k + 1;
    let mut indices = vec![0u32; n * cols];
    let mut similarities = vec![0f32; n * cols];
    indices
        .par_chunks_mut(cols)
        .zip(similarities.par_chunks_mut(cols))
        .enumerate()
        .for_each(|(i, (idx, sim))| {
            let row = &data[i * dim..(i + 1) * dim];
            let mut c: Vec<(f32, u32)> = cand[i * fetch..(i + 1) * fetch]
                .iter()
                .map(|&j| j as usize)
                .filter(|&j| j != i && j < n)
                .map(|j| (dot(row, &data[j * dim..(j + 1) * dim]), j as u32))
                .collect();
            c.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            c.dedup_by_key(|x| x.1);
            idx[0] = i as u32;
            sim[0] = selfs[i];
            for (col, &(s, j)) in c.iter().take(k).enumerate() {
                idx[1 + col] = j;
                sim[1 + col] = s;
            }
        });
    Ok(KnnResult {
        n,
        cols,
        indices,
        similarities,
    })
}
