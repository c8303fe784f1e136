//! Content-addressed artifact store (blobs, action records, locks, export/import, verify, gc).
