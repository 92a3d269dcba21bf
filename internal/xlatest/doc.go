// Package xlatest gives tests the XLA CPU plugin's backend: a test that needs it fails when CI=true
// (CI installs the plugin with tools/install-xla-cpu.sh) and is skipped otherwise.
package xlatest
