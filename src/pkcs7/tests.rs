//! Unit tests of the PKCS#7 format.
