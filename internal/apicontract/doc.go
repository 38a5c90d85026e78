// Package apicontract holds a compile-time check that the public API keeps the names and
// signatures the project promises its users.
package apicontract
