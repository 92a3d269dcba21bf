package model

// HeadLossChunkElements lets external tests shrink CausalLMHeadLoss's chunks so that a tiny model
// runs several of them.
var HeadLossChunkElements = &headLossChunkElements
