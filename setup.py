"""mmscope: ScopeViT and ScalableViT backbones for OpenMMLab 2.0.

Besides the ``mmscope`` package, the wheel ships the configs, the tools users run and
``model-index.yml`` under ``mmscope/.mim/`` (the OpenMMLab ``mim`` convention), built from
the top-level folders at packaging time: copied for ``bdist_wheel`` / ``sdist`` / a plain
``pip install .``, linked for an editable install (``pip install -e .``), so nothing is
kept twice in git. ``mmscope.utils.configs.config_root()`` finds them there.
"""
import os
import os.path as osp
import shutil
import sys
from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))
#: what goes into mmscope/.mim, from the top of the source tree
MIM_FILES = ('configs', 'tools', 'model-index.yml')


def get_version():
    ns = {}
    with open(osp.join(HERE, 'mmscope', 'version.py')) as f:
        exec(f.read(), ns)
    return ns['__version__']


def parse_requirements(fname):
    """Requirement lines of ``fname`` (comments and nested ``-r`` skipped)."""
    reqs = []
    with open(osp.join(HERE, fname)) as f:
        for line in f:
            line = line.split('#')[0].strip()
            if line and not line.startswith('-'):
                reqs.append(line)
    return reqs


def add_mim_extension():
    """Put :data:`MIM_FILES` into ``mmscope/.mim``: links for ``develop`` (editable),
    copies for anything that builds a distribution. Other commands leave it alone."""
    if 'develop' in sys.argv or 'editable_wheel' in sys.argv:
        mode = 'link'
    elif {'bdist_wheel', 'sdist', 'install', 'build', 'build_py'} & set(sys.argv):
        mode = 'copy'
    else:
        return
    mim = osp.join(HERE, 'mmscope', '.mim')
    os.makedirs(mim, exist_ok=True)
    for name in MIM_FILES:
        src, dst = osp.join(HERE, name), osp.join(mim, name)
        if not osp.exists(src):
            continue
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        if mode == 'link':
            os.symlink(osp.relpath(src, mim), dst)
        elif osp.isdir(src):
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
        else:
            shutil.copyfile(src, dst)


if __name__ == '__main__':
    add_mim_extension()
    setup(
        name='mmscope',
        version=get_version(),
        description='ScopeViT and ScalableViT backbones for OpenMMLab 2.0 '
        '(mmpretrain, mmdet, mmseg)',
        long_description=open(osp.join(HERE, 'README.md')).read(),
        long_description_content_type='text/markdown',
        keywords='computer vision, vision transformer, backbone, openmmlab',
        packages=find_packages(include=('mmscope', 'mmscope.*')),
        include_package_data=True,  # mmscope/.mim (MANIFEST.in)
        python_requires='>=3.8',
        license='Apache License 2.0',
        classifiers=[
            'Development Status :: 4 - Beta',
            'License :: OSI Approved :: Apache Software License',
            'Operating System :: OS Independent',
            'Programming Language :: Python :: 3',
            'Programming Language :: Python :: 3.8',
            'Programming Language :: Python :: 3.9',
            'Programming Language :: Python :: 3.10',
            'Programming Language :: Python :: 3.11',
            'Intended Audience :: Science/Research',
            'Topic :: Scientific/Engineering :: Artificial Intelligence',
            'Topic :: Scientific/Engineering :: Image Recognition',
        ],
        # torch/torchvision are deliberately not listed: users install the build of the
        # pinned pair that matches their CUDA (see docs/setup.md); listing them would let pip
        # resolve one. mmcv must be built against that torch (docs/setup.md, tools/setup_env.sh).
        install_requires=parse_requirements('requirements/runtime.txt'),
        extras_require={
            'tests':
            parse_requirements('requirements/tests.txt'),
            # mmdeploy is left out: its protobuf<=3.20.2 pin conflicts with onnx 1.23, so
            # the set-up installs it with --no-deps (tools/setup_env.sh, step 6)
            # timm's own requirements are torch/torchvision (already pinned and installed)
            # and hub helpers; the set-up installs it with --no-deps (tools/setup_env.sh)
            'timm':
            parse_requirements('requirements/timm.txt'),
            'deploy': [
                r for r in parse_requirements('requirements/deploy.txt')
                if r.split('=')[0] in ('onnx', 'onnxruntime', 'onnxscript')
            ],
        },
        zip_safe=False,
    )
