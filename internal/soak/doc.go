// Package soak holds the soak test: many concurrent actors (resource processes,
// poolboy clean cycles, a fake Concourse whose builds start, finish, abort and
// hand locks on) against one lock repository served by git daemon on loopback,
// with faults injected, and the invariants checked after every step and over
// the whole history at the end. See docs/RELIABILITY.md.
package soak
