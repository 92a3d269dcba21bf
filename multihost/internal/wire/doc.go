// Package wire holds the rendezvous protocol's messages: net/rpc (gob) needs exported types, and
// they are no part of package multihost's API.
package wire
