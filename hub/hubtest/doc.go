// Package hubtest is a local stand-in for the Hugging Face Hub that implements the HTTP upload
// protocol huggingface_hub speaks — whoami, repository and branch creation, preupload, the Git
// LFS batch API with basic and multipart transfers, the NDJSON commit — and the download side
// (revision API, resolve/ with LFS redirects), strictly: malformed or out-of-protocol requests
// are refused the way the Hub refuses them, and every request is recorded for tests to inspect.
package hubtest
