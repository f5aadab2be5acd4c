package model

import "liquidlab/framework/num"

// CrossEntropy is a consumer that adds the mean cross-entropy of the logits
// against labels (ignoring ignoreID) into *loss and, when training, writes its
// gradient scaled by 1/count, where count is the number of labels not ignored in
// the whole batch. It also counts correct argmax predictions into *correct.
// Rows are spread over the cores; the block's loss is summed in row order, so the
// result does not depend on the core count.
func CrossEntropy(labels []int64, ignoreID int64, count int, loss *float64, correct *int) Consumer {
	var rowLoss []float64
	var rowOK []bool
	return func(blk *Block) error {
		v := len(blk.Logits) / blk.Rows
		inv := float32(1 / float64(count))
		if cap(rowLoss) < blk.Rows {
			rowLoss, rowOK = make([]float64, blk.Rows), make([]bool, blk.Rows)
		}
		rowLoss, rowOK = rowLoss[:blk.Rows], rowOK[:blk.Rows]
		num.ParallelRows(blk.Rows, 4*v, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				rowLoss[i], rowOK[i] = 0, false
				lab := labels[blk.Index[i]]
				if lab == ignoreID {
					if blk.DLogits != nil {
						clear(blk.DLogits[i*v : (i+1)*v])
					}
					continue
				}
				row := blk.Logits[i*v : (i+1)*v]
				mx, arg := num.MaxArg(row)
				rowOK[i] = int64(arg) == lab
				xl := float64(row[lab]) // read before dst (= row when training) is written
				var dst []float32
				if blk.DLogits != nil {
					dst = blk.DLogits[i*v : (i+1)*v]
				}
				// dst gets softmax/count, the mean loss's gradient but for
				// the label's −1/count.
				lse := num.LogSumExp(row, mx, dst, inv)
				rowLoss[i] = lse - xl
				if dst != nil {
					dst[lab] -= inv
				}
			}
		})
		for i := range rowLoss {
			*loss += rowLoss[i] / float64(count)
			if rowOK[i] && correct != nil {
				*correct++
			}
		}
		return nil
	}
}
