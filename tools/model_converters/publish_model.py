"""Prepare a training checkpoint for release, the OpenMMLab way.

    python tools/model_converters/publish_model.py IN_FILE OUT_FILE [--force]

Keeps ``state_dict`` and ``meta`` (dropping optimizer, scheduler and message-hub state)
and renames the output to ``OUT-<first 8 hex of sha256>.pth``.
"""
import argparse
import os
import os.path as osp

from mmscope.converters import ConversionError, read_checkpoint, sha256_of, write_checkpoint


def publish(in_file: str, out_file: str, force: bool = False, trust: bool = False) -> str:
    ckpt = read_checkpoint(in_file, trust=trust)
    if 'state_dict' not in ckpt:
        raise ConversionError(f'{in_file}: no state_dict entry (keys: {sorted(ckpt)[:10]}); '
                              'is it an mmengine training checkpoint?')
    meta = dict(ckpt.get('meta', {}))
    # keep what identifies the model; drop the run's bookkeeping
    for key in ('hook_msgs', 'cfg'):
        meta.pop(key, None)
    out = {'state_dict': ckpt['state_dict'], 'meta': meta}
    stem = out_file[:-4] if out_file.endswith('.pth') else out_file
    # write, hash, then move to the hashed name (never overwriting without --force)
    tmp_name = stem + '.unhashed.pth'
    if osp.exists(tmp_name):
        raise FileExistsError(f'{tmp_name} exists (left by an earlier run?); remove it')
    write_checkpoint(out, tmp_name)
    digest = sha256_of(tmp_name)
    final = f'{stem}-{digest[:8]}.pth'
    if osp.exists(final) and not force:
        os.remove(tmp_name)
        raise FileExistsError(f'{final} exists; refusing to overwrite it (use --force)')
    os.replace(tmp_name, final)
    return final


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('in_file', help='training checkpoint')
    parser.add_argument('out_file', help='output name (the hash is appended)')
    parser.add_argument('--force', action='store_true', help='overwrite an existing output')
    parser.add_argument(
        '--trust', action='store_true', help='fully unpickle IN_FILE (only for files you trust)')
    args = parser.parse_args(argv)
    try:
        final = publish(args.in_file, args.out_file, args.force, args.trust)
    except (ConversionError, FileExistsError) as exc:
        parser.exit(1, f'error: {exc}\n')
    print(f'published: {final}\nsha256: {sha256_of(final)}')


if __name__ == '__main__':
    main()
