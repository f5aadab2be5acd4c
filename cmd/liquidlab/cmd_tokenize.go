package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"liquidlab/framework/tokenizer"
)

const tokenizeSynopsis = `tokenize [--dir D | --tokenizer T.json | --vocab V --merges M] [--no-special] [--json | --decode [--keep-special]] < text

Encodes standard input, one line at a time, with a byte-level BPE tokenizer
(LED/BART/RoBERTa/GPT-2 files) and prints one line of space-separated ids per
input line. Each input line is encoded without its final "\n" (a "\r" before
it is kept and encoded). Special tokens written in the text (<s>, </s>, <pad>,
<unk>, <mask>, <|endoftext|>, added tokens) are kept whole; " <mask>" drops
the space as BART's tokenizer does.

Tokenizer: --dir D loads D/tokenizer.json, else D/vocab.json + D/merges.txt;
--tokenizer and --vocab/--merges name the files; with none of them the
built-in 2000-token vocabulary is used.

Framing: ids are framed as <s> … </s> when the vocabulary has those tokens
(LED, BART, RoBERTa); GPT-2 files have none and get no framing, as GPT-2's
own tokenizers do. A tokenizer.json frames as its post_processor says.
--no-special leaves the framing out.

--json prints per line {"ids": [...], "tokens": [...], "offsets": [[start,end],...]}
where offsets are byte offsets into the line ([0,0] for framing tokens).

--decode reverses: each line of space-separated ids becomes text; special
tokens are skipped unless --keep-special. Decoded bytes are written as they are.

Examples:
  echo "Hello world" | liquidlab tokenize
  liquidlab tokenize --dir ~/models/led-base-16384 --no-special < doc.txt
  liquidlab tokenize --no-special < doc.txt | liquidlab tokenize --decode

Flags:`

func init() {
	register("tokenize", command{
		summary: "encode text lines to BPE token ids (or --decode ids to text)",
		run:     runTokenize,
	})
}

func runTokenize(e *env, args []string) error {
	fs := newFlags(e, "tokenize", tokenizeSynopsis)
	dir := fs.String("dir", "", "directory holding tokenizer.json or vocab.json + merges.txt")
	tjson := fs.String("tokenizer", "", "Hugging Face `tokenizer.json` of a byte-level BPE")
	vocab := fs.String("vocab", "", "`vocab.json` (GPT-2/RoBERTa/BART layout); needs --merges")
	merges := fs.String("merges", "", "`merges.txt` matching --vocab")
	noSpecial := fs.Bool("no-special", false, "do not frame the ids with <s> … </s>")
	asJSON := fs.Bool("json", false, "print a JSON object per line with ids, tokens and byte offsets")
	decode := fs.Bool("decode", false, "read lines of ids and print the text")
	keepSpecial := fs.Bool("keep-special", false, "with --decode, print special tokens too")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("tokenize: unexpected argument %q (text is read from standard input): %w", fs.Arg(0), errUsage)
	}
	tok, err := loadTokenizer(*dir, *tjson, *vocab, *merges)
	if err != nil {
		return fmt.Errorf("tokenize: %w", err)
	}
	if *decode && *asJSON {
		return fmt.Errorf("tokenize: --json and --decode cannot be combined: %w", errUsage)
	}
	in := bufio.NewReaderSize(e.stdin, 1<<16)
	out := bufio.NewWriterSize(e.stdout, 1<<16)
	for lineNo := 1; ; lineNo++ {
		line, rerr := in.ReadString('\n')
		if rerr != nil && rerr != io.EOF {
			return fmt.Errorf("tokenize: reading standard input: %w", rerr)
		}
		if rerr == io.EOF && line == "" {
			break
		}
		line = strings.TrimSuffix(line, "\n")
		if *decode {
			if err := decodeLine(out, tok, line, lineNo, !*keepSpecial); err != nil {
				return err
			}
		} else if err := encodeLine(out, tok, line, !*noSpecial, *asJSON); err != nil {
			return err
		}
		if rerr == io.EOF {
			break
		}
	}
	if err := out.Flush(); err != nil {
		return fmt.Errorf("tokenize: writing output: %w", err)
	}
	return nil
}

func loadTokenizer(dir, tjson, vocab, merges string) (*tokenizer.Tokenizer, error) {
	n := 0
	for _, s := range []string{dir, tjson, vocab + merges} {
		if s != "" {
			n++
		}
	}
	switch {
	case n > 1:
		return nil, fmt.Errorf("give only one of --dir, --tokenizer, --vocab/--merges: %w", errUsage)
	case (vocab == "") != (merges == ""):
		return nil, fmt.Errorf("--vocab and --merges go together: %w", errUsage)
	case dir != "":
		return tokenizer.LoadDir(dir)
	case tjson != "":
		return tokenizer.LoadJSON(tjson)
	case vocab != "":
		return tokenizer.Load(vocab, merges)
	}
	return tokenizer.Default(), nil
}

type jsonLine struct {
	IDs     []int    `json:"ids"`
	Tokens  []string `json:"tokens"`
	Offsets [][2]int `json:"offsets"`
}

func encodeLine(w *bufio.Writer, tok *tokenizer.Tokenizer, line string, special, asJSON bool) error {
	enc, err := tok.EncodeWith(line, tokenizer.Options{AddSpecialTokens: special})
	if err != nil {
		return fmt.Errorf("tokenize: %w", err)
	}
	if asJSON {
		jl := jsonLine{IDs: enc.IDs, Offsets: enc.Offsets, Tokens: make([]string, len(enc.IDs))}
		for i, id := range enc.IDs {
			jl.Tokens[i], _ = tok.Token(id)
		}
		b, err := json.Marshal(jl)
		if err != nil {
			return fmt.Errorf("tokenize: %w", err)
		}
		w.Write(b)
		return w.WriteByte('\n')
	}
	var buf []byte
	for i, id := range enc.IDs {
		if i > 0 {
			buf = append(buf, ' ')
		}
		buf = strconv.AppendInt(buf, int64(id), 10)
	}
	buf = append(buf, '\n')
	_, err = w.Write(buf)
	return err
}

func decodeLine(w *bufio.Writer, tok *tokenizer.Tokenizer, line string, lineNo int, skipSpecial bool) error {
	fields := strings.Fields(line)
	ids := make([]int, len(fields))
	for i, f := range fields {
		id, err := strconv.Atoi(f)
		if err != nil {
			var ne *strconv.NumError
			if errors.As(err, &ne) {
				err = ne.Err
			}
			return fmt.Errorf("tokenize: --decode: line %d: %q is not a token id: %v", lineNo, f, err)
		}
		ids[i] = id
	}
	text, err := tok.Decode(ids, skipSpecial)
	if err != nil {
		return fmt.Errorf("tokenize: --decode: line %d: %w", lineNo, err)
	}
	w.WriteString(text)
	return w.WriteByte('\n')
}
