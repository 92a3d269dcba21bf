// Package testenv holds what several packages' tests need from the machine: the XLA CPU plugin (its
// path, or a backend on it) and a free localhost port.
package testenv
