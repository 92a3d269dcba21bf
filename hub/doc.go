// Package hub downloads model and dataset repositories from the Hugging Face Hub into the same
// cache huggingface_hub uses (HF_HOME / HF_HUB_CACHE, models--org--name/{blobs,refs,snapshots}),
// so files fetched by either side are shared. It reads the variables huggingface_hub reads:
// HF_ENDPOINT, HF_TOKEN (else $HF_HOME/token) and HF_HUB_OFFLINE.
//
// It also pushes: UploadFolder commits a folder through the Hub's documented HTTP upload API as
// huggingface_hub's upload_folder does (preupload, Git LFS batch with basic and multipart
// transfers, NDJSON commit), skipping files the repository already holds and retrying transient
// failures with backoff; CreateRepo, CreateBranch and WhoAmI are the calls around it. Package
// hubtest is a strict local Hub for tests. (Xet storage, huggingface_hub's newer transfer path,
// is not spoken: the LFS path it falls back to is the documented, stable one.)
//
// Written here rather than taken from go-huggingface's hub package because, as recorded in
// docs/ARCHITECTURE.md's notes, that one keeps revisions under info/<rev> instead of refs/<rev>
// (so it does not share huggingface_hub's cache) and cannot work offline.
package hub
