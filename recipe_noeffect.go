package handbook

// noEffect warns about typed keys a recipe sets that change nothing here (each once, naming where
// it was set), so that a seed recipe runs unchanged yet no setting is dropped silently.
func (l *loader) noEffect() {
	t, d := &l.r.Training, &l.r.Data
	if l.r.Task == TaskDPO && t.PaddingFree {
		l.warn("padding_free", "padding_free ignored: DPO batches stay padded; the loss is the same "+
			"(TRL's padding-free layout only saves the padding's memory)")
	}
	if k := d.DatasetKwargs; k.AddSpecialTokens != nil || k.AppendConcatToken != nil {
		l.warn("dataset_kwargs", "dataset_kwargs add_special_tokens/append_concat_token ignored: TRL 1.16 reads only "+
			"skip_prepare_dataset from dataset_kwargs (chat templates are tokenized without added special tokens)")
	}
	if k := d.DatasetKwargs; k.SkipPrepareDataset {
		l.warn("dataset_kwargs", "dataset_kwargs skip_prepare_dataset ignored: datasets are always tokenized here")
	}
}
