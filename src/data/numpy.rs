//! numpy arrays inside pickles (CIFAR python version): recognise the objects numpy's
//! `__reduce__` produces (`_reconstruct` + `BUILD` state up to protocol 4, `_frombuffer` at protocol 5)
//! and return a C-order uint8 array's shape and raw bytes.

use std::rc::Rc;

use super::pickle::Value;

/// A numpy uint8 array decoded from a pickle.
#[derive(Debug, Clone, PartialEq)]
pub struct NdArray {
    pub shape: Vec<usize>,
    pub data: Rc<Vec<u8>>,
}

const NUMPY_MULTIARRAY: &[&str] = &["numpy.core.multiarray", "numpy._core.multiarray"];
const NUMPY_NUMERIC: &[&str] = &["numpy.core.numeric", "numpy._core.numeric"];

fn shape_of(v: &Value) -> Result<Vec<usize>, String> {
    match v {
        Value::Tuple(t) | Value::List(t) => t
            .iter()
            .map(|d| match d {
                Value::Int(i) if *i >= 0 => Ok(*i as usize),
                _ => Err("bad array shape".to_string()),
            })
            .collect(),
        _ => Err("bad array shape".to_string()),
    }
}

fn check_u8_dtype(v: &Value) -> Result<(), String> {
    let name = match v {
        Value::Object { callable, args, .. } if callable.is_global(&["numpy"], "dtype") => {
            args.first().and_then(Value::text)
        }
        _ => None,
    };
    match name.as_deref() {
        Some("u1" | "uint8" | "|u1") => Ok(()),
        Some(other) => Err(format!("array dtype is {other}, expected uint8")),
        None => Err("array dtype is not a numpy dtype".to_string()),
    }
}

/// Interpret `v` as a C-order numpy uint8 array.
pub fn ndarray(v: &Value) -> Result<NdArray, String> {
    let Value::Object {
        callable,
        args,
        state,
    } = v
    else {
        return Err("not a numpy array".to_string());
    };
    let (shape, dtype, fortran, data) = if callable.is_global(NUMPY_MULTIARRAY, "_reconstruct") {
        let st = match state.as_deref() {
            Some(Value::Tuple(t)) if t.len() == 5 => &t[1..],
            Some(Value::Tuple(t)) if t.len() == 4 => &t[..],
            _ => {
                return Err(
                    "numpy array without a (version, shape, dtype, order, data) state".into(),
                )
            }
        };
        (&st[0], &st[1], matches!(st[2], Value::Bool(true)), &st[3])
    } else if callable.is_global(NUMPY_NUMERIC, "_frombuffer") && args.len() == 4 {
        let f = matches!(args[3].text().as_deref(), Some("F"));
        (&args[2], &args[1], f, &args[0])
    } else {
        return Err("not a numpy array".to_string());
    };
    let shape = shape_of(shape)?;
    check_u8_dtype(dtype)?;
    if fortran && shape.len() > 1 {
        return Err("Fortran-order arrays are not supported".to_string());
    }
    let Value::Bytes(data) = data else {
        return Err("numpy array data is not a byte string".to_string());
    };
    let n: usize = shape.iter().product();
    if data.len() != n {
        return Err(format!(
            "numpy array of shape {shape:?} has {} data bytes, expected {n}",
            data.len()
        ));
    }
    Ok(NdArray {
        shape,
        data: data.clone(),
    })
}
