"""Mutation check: plant small, plausible bugs one at a time and make sure the fast suite
catches every one (a developer's script, not collected by pytest; about 6 minutes).

    python tests/mutation_check.py [--only NAME ...] [--list]

Each mutation is applied to a fresh copy of the working tree (tracked and untracked,
not ignored, files) in a temporary folder; there, ``pytest -m "not slow" -x`` runs the
test files named for it, with the copy first on ``PYTHONPATH`` (checked: the copy's
``mmscope`` is the one imported). A mutation is caught when those tests fail. The test
files named are a subset of the fast suite, so caught there means caught by
``make test``. The unmutated copy must pass the same files first (else a failure would
prove nothing). Exits 1 if any mutation survives.
"""
import argparse
import os
import os.path as osp
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

#: name -> (file, text to replace, replacement, test files that must catch it, effect)
MUTATIONS = {
    'sdpa-bool-mask-dropped':
    ('mmscope/models/layers/attention.py',
     'q, k, v, attn_mask=bias, dropout_p=dropout_p, scale=scale)',
     'q, k, v, attn_mask=None if bias is not None and bias.dtype == torch.bool else bias,'
     ' dropout_p=dropout_p, scale=scale)', [
         'tests/test_models/test_backbones/test_scalablevit.py',
         'tests/test_models/test_layers/test_attention_modes.py'
     ], "the fused SDPA call drops boolean key masks (ScalableViT's padded IWSA windows)"),
    'sdpa-scale-dropped': ('mmscope/models/layers/attention.py',
                           'q, k, v, attn_mask=bias, dropout_p=dropout_p, scale=scale)',
                           'q, k, v, attn_mask=bias, dropout_p=dropout_p)',
                           ['tests/test_models/test_layers/test_attention_modes.py'
                            ], 'the fused SDPA call uses its default softmax temperature'),
    'pos-conv-after-second-block':
    ('mmscope/models/backbones/scalablevit.py',
     '            if j == 0:\n                x = self.pos_conv(x, hw_shape)',
     '            if j == 1:\n                x = self.pos_conv(x, hw_shape)',
     ['tests/test_models/test_backbones/test_golden.py'
      ], "ScalableViT's positional conv after the second block of each stage"),
    'eval-allowlisted': ('mmscope/utils/checkpoint.py',
                         "        (_restricted_getattr, 'builtins.getattr'),\n    ]",
                         "        (_restricted_getattr, 'builtins.getattr'),\n        eval,\n    ]",
                         ['tests/test_utils/test_checkpoint_safety.py'
                          ], 'a crafted checkpoint can run eval() through safe_load'),
    'mssa-query-key-value-swapped':
    ('mmscope/models/utils/key_tables.py',
     "('blocks{S}.{b}.mssa.attn.query.{p}', 'backbone.stages.{s}.blocks.{b}.mssa.attn.q.{p}'),\n"
     "    ('blocks{S}.{b}.mssa.attn.key_value.{p}', "
     "'backbone.stages.{s}.blocks.{b}.mssa.attn.kv.{p}'),",
     "('blocks{S}.{b}.mssa.attn.query.{p}', 'backbone.stages.{s}.blocks.{b}.mssa.attn.kv.{p}'),\n"
     "    ('blocks{S}.{b}.mssa.attn.key_value.{p}', "
     "'backbone.stages.{s}.blocks.{b}.mssa.attn.q.{p}'),",
     ['tests/test_models/test_backbones/test_golden.py'
      ], 'the converter maps MSSA query and key_value to each other'),
    'gsda-key-mask-dropped':
    ('mmscope/models/backbones/scopevit.py',
     '    if key_mask is None:\n        return bias\n    return bias.masked_fill(',
     '    if True:\n        return bias\n    return bias.masked_fill(',
     ['tests/test_models/test_backbones/test_scopevit.py'
      ], "ScopeViT's GSDA attends to padded grid keys"),
    'pad-amount-full-window': ('mmscope/models/layers/padding.py',
                               '    return (size + multiple - 1) // multiple * multiple - size',
                               '    return size // multiple * multiple + multiple - size', [
                                   'tests/test_models/test_backbones/test_scalablevit.py',
                                   'tests/test_models/test_backbones/test_scopevit.py'
                               ], 'sizes that already fit are padded by a whole extra window'),
    'rel-pos-sign-dropped':
    ('mmscope/models/backbones/scopevit.py',
     "'rel_coords', torch.sign(table) * torch.log1p(table.abs()), persistent=False)",
     "'rel_coords', torch.log1p(table.abs()), persistent=False)",
     ['tests/test_models/test_backbones/test_golden.py'
      ], "GSDA's position-bias MLP sees log(1 + abs(offset)) without its sign"),
    'restricted-getattr-open':
    ('mmscope/utils/checkpoint.py',
     '    if (isinstance(obj, hb) or obj is hb) and name in allowed:', '    if True:',
     ['tests/test_utils/test_checkpoint_safety.py'
      ], "the getattr stand-in returns any attribute (getattr(module, 'system'))"),
    'channels-last-weights-dropped':
    ('mmscope/models/layers/conv.py',
     '        w.data = torch.empty_like(w, memory_format=torch.channels_last).copy_(w.data)',
     '        pass', ['tests/test_tools/test_dist.py'],
     'conv weights contiguous again: gradients unlike parameters (DDP warning, copies)'),
    'process-group-left-alive':
    ('mmscope/apis/runner.py',
     '        gc.collect()\n        shutdown_distributed(succeeded=True)\n        return result',
     '        gc.collect()\n        return result', ['tests/test_tools/test_dist.py'],
     'a finished run leaves its process group to static destructors'),
    'cpu-rules-switch-ignored':
    ('mmscope/models/layers/attention.py',
     "    if q.device.type == 'cpu' and not cpu_rules_enabled():", '    if False:',
     ['tests/test_models/test_layers/test_attention_modes.py'
      ], 'the fused-path tests silently compare the reference path with itself'),
    'measured-dispatch-keeps-the-slower':
    ('mmscope/models/layers/dispatch.py', '    choice = min(names, key=lambda n: best[n])',
     '    choice = max(names, key=lambda n: best[n])',
     ['tests/test_models/test_layers/test_attention_dispatch.py'
      ], "'auto' attention keeps the kernel measured to be slower"),
    'frozen-stages-left-in-train-mode':
    ('mmscope/models/backbones/base.py',
     '        for m in self._frozen_modules():\n            m.eval()\n',
     '        for m in self._frozen_modules():\n',
     ['tests/test_models/test_backbones/test_backbone_contract.py'
      ], 'frozen stages keep updating their BatchNorm statistics (every family)'),
    'drop-path-schedule-flat':
    ('mmscope/models/backbones/base.py',
     "        return torch.linspace(0, drop_path_rate, sum(depths), device='cpu').tolist()",
     '        return [float(drop_path_rate)] * sum(depths)',
     ['tests/test_models/test_backbones/test_backbone_contract.py'
      ], 'every block drops paths at the full rate instead of a linear schedule'),
    'layer-ids-after-the-last-block-not-on-top':
    ('mmscope/models/backbones/base.py',
     '            layer = seen if is_block or seen < num_blocks else num_blocks + 1',
     '            layer = seen', ['tests/test_models/test_backbones/test_backbone_contract.py'],
     'the last norm trains at the last block\'s decayed learning rate (every family)'),
    'pretrained-coverage-unchecked':
    ('mmscope/utils/checkpoint.py', '    if matched < MIN_MATCHED_FRACTION * len(params):',
     '    if matched < 0:', ['tests/test_models/test_backbones/test_backbone_contract.py'],
     "another family's checkpoint leaves a backbone with random weights, without an error"),
    'evaluation-coverage-unchecked':
    ('mmscope/utils/checkpoint.py', "    if purpose == 'evaluate':\n        if short:",
     "    if purpose == 'evaluate':\n        if False:",
     ['tests/test_utils/test_checkpoint_coverage.py', 'tests/test_tools/test_checkpoint_fit.py'
      ], 'a checkpoint with a head of another class count is tested / predicted / exported'),
    'backbone-no-decay-keys-ignored':
    ('mmscope/engine/optim_wrapper_constructor.py',
     '        keys = {k: dict(decay_mult=0.) for k in backbone.no_decay_keys}', '        keys = {}',
     ['tests/test_engine/test_layer_decay.py'
      ], 'LayerScales, position MLPs and positional convs decay again (the configs rely on it)'),
    'timm-released-layout-not-converted':
    ('mmscope/timm.py', "    if not any(k.startswith(BACKBONE) for k in weights):", "    if False:",
     ['tests/test_timm.py'
      ], 'a released checkpoint given to timm is not converted by the key tables'),
    'gsda-sub-grid-bias-positions':
    ('mmscope/models/backbones/scopevit.py',
     '            index = index.view(gh, gw, gh, gw)[:mh, :mw, :mh, :mw].reshape(mh * mw, mh * mw)',
     '            index = index[:mh * mw, :mh * mw]',
     ['tests/test_models/test_backbones/test_scopevit.py'],
     'GSDA among the real tokens takes the bias of the first L grid pairs, not of its positions'),
    'gsda-sub-grid-one-axis': ('mmscope/models/backbones/scopevit.py',
                               '    if height % sh or width % sw:',
                               '    if height % sh and width % sw:',
                               ['tests/test_models/test_backbones/test_scopevit.py'
                                ], 'GSDA skips the padding where only one axis agrees'),
    'chunked-drops-last-chunk': ('mmscope/models/layers/attention.py',
                                 'for j in range(0, q.shape[1], heads):',
                                 'for j in range(0, q.shape[1] - heads + 1, heads):',
                                 ['tests/test_models/test_layers/test_attention_dispatch.py'
                                  ], 'chunked attention leaves out an uneven last chunk of heads'),
    'chunked-bias-of-first-chunk':
    ('mmscope/models/layers/attention.py', 'bias[tuple(p if n > 1 else slice(None)',
     'bias[tuple(slice(0, p.stop - p.start) if n > 1 else slice(None)',
     ['tests/test_models/test_layers/test_attention_dispatch.py'
      ], 'every chunk takes the bias of the first chunk'),
    'conv-bn-fold-conv-bias': ('mmscope/models/layers/conv.py', 'else get(conv.bias) - get(',
                               'else 0 - get(', ['tests/test_models/test_layers/test_conv.py'],
                               'the BatchNorm fold drops the convolution bias'),
    'conv-bn-fold-cache-stale': ('mmscope/models/layers/conv.py',
                                 'norm.bias, norm.running_mean, norm.running_var,', 'norm.bias,',
                                 ['tests/test_models/test_layers/test_conv.py'],
                                 'the folded weights outlive a change of the running statistics'),
    'conv-bn-fold-survives-training': ('mmscope/models/layers/conv.py',
                                       "getattr(norm, 'num_batches_tracked', None))", ')',
                                       ['tests/test_models/test_layers/test_conv.py'
                                        ], 'the folded weights outlive a train-mode forward'),
    'allocator-keeps-trimming': ('mmscope/apis/allocator.py',
                                 'and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1)', ')',
                                 ['tests/test_apis/test_allocator.py'
                                  ], 'freed heap memory still goes back to the kernel'),
    'stage-tokens-permuted': ('mmscope/models/backbones/scopevit.py',
                              'x = make_contiguous(x.permute(0, 2, 3, 1))',
                              'x = x.permute(0, 2, 3, 1)',
                              ['tests/test_models/test_backbones/test_scopevit.py'
                               ], 'the blocks get a permuted view of the NCHW map'),
}


def copy_tree(dst):
    files = subprocess.run(['git', 'ls-files', '-co', '--exclude-standard'],
                           cwd=ROOT,
                           capture_output=True,
                           text=True,
                           check=True).stdout.split('\n')
    for rel in filter(None, files):
        src = osp.join(ROOT, rel)
        if osp.isfile(src):
            os.makedirs(osp.dirname(osp.join(dst, rel)), exist_ok=True)
            shutil.copy2(src, osp.join(dst, rel))


def run_tests(tree, tests):
    env = dict(os.environ, PYTHONPATH=tree + os.pathsep + os.environ.get('PYTHONPATH', ''))
    where = subprocess.run([sys.executable, '-c', 'import mmscope; print(mmscope.__file__)'],
                           cwd=tree,
                           env=env,
                           capture_output=True,
                           text=True,
                           check=True)
    if not where.stdout.strip().startswith(tree):
        raise RuntimeError(f'the copy is not what is imported: {where.stdout.strip()}')
    proc = subprocess.run([
        sys.executable, '-m', 'pytest', '-q', '-x', '-m', 'not slow', '-p', 'no:cacheprovider',
        *tests
    ],
                          cwd=tree,
                          env=env,
                          capture_output=True,
                          text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(('FAILED', 'ERROR'))]
    return proc.returncode, (lines[0] if lines else proc.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--only', nargs='+', choices=list(MUTATIONS))
    p.add_argument('--list', action='store_true')
    args = p.parse_args(argv)
    names = args.only or list(MUTATIONS)
    if args.list:
        for n in names:
            print(f'{n}: {MUTATIONS[n][4]}')
        return 0
    rows, survived = [], []
    with tempfile.TemporaryDirectory(prefix='mmscope-mutation-') as tmp:
        base = osp.join(tmp, 'base')
        copy_tree(base)
        tests = sorted({t for n in names for t in MUTATIONS[n][3]})
        rc, last = run_tests(base, tests)
        if rc != 0:
            print(f'the unmutated tree fails its tests ({last}); fix that first')
            return 2
        for n in names:
            path, old, new, tests, effect = MUTATIONS[n]
            tree = osp.join(tmp, n)
            shutil.copytree(base, tree)
            with open(osp.join(tree, path)) as f:
                text = f.read()
            if text.count(old) != 1:
                raise RuntimeError(f'{n}: the text to mutate occurs {text.count(old)} times '
                                   f'in {path} (the code changed: update the mutation)')
            with open(osp.join(tree, path), 'w') as f:
                f.write(text.replace(old, new))
            t0 = time.time()
            rc, first = run_tests(tree, tests)
            caught = rc != 0
            rows.append((n, effect, 'caught' if caught else 'SURVIVED', first, time.time() - t0))
            if not caught:
                survived.append(n)
            print(
                f'{n}: {"caught" if caught else "SURVIVED"} in {time.time() - t0:.0f} s '
                f'({first})',
                flush=True)
            shutil.rmtree(tree)
    print('\n| mutation | effect | result | first failure |\n| --- | --- | --- | --- |')
    for n, effect, result, first, _ in rows:
        print(f'| {n} | {effect} | {result} | {first.replace("|", "/")} |')
    return 1 if survived else 0


if __name__ == '__main__':
    sys.exit(main())
