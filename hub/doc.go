// Package hub downloads model and dataset repositories from the Hugging Face Hub into the same
// cache huggingface_hub uses (HF_HOME / HF_HUB_CACHE, models--org--name/{blobs,refs,snapshots}),
// so files fetched by either side are shared. It reads the variables huggingface_hub reads:
// HF_ENDPOINT, HF_TOKEN (else $HF_HOME/token) and HF_HUB_OFFLINE. It only downloads; nothing is
// pushed.
//
// Written here rather than taken from go-huggingface's hub package because, as recorded in
// docs/ARCHITECTURE.md's notes, that one keeps revisions under info/<rev> instead of refs/<rev>
// (so it does not share huggingface_hub's cache) and cannot work offline.
package hub
