"""mmscope: ScopeViT and ScalableViT backbones for OpenMMLab 2.0."""
import os.path as osp

from setuptools import find_packages, setup


def get_version():
    ns = {}
    with open(osp.join(osp.dirname(__file__), 'mmscope', 'version.py')) as f:
        exec(f.read(), ns)
    return ns['__version__']


def parse_requirements(fname):
    """Requirement lines of ``fname`` (comments and nested ``-r`` skipped)."""
    reqs = []
    with open(fname) as f:
        for line in f:
            line = line.split('#')[0].strip()
            if line and not line.startswith('-'):
                reqs.append(line)
    return reqs


setup(
    name='mmscope',
    version=get_version(),
    description='ScopeViT and ScalableViT backbones for OpenMMLab 2.0 '
    '(mmpretrain, mmdet, mmseg)',
    long_description=open('README.md').read() if osp.exists('README.md') else '',
    long_description_content_type='text/markdown',
    packages=find_packages(include=('mmscope', 'mmscope.*')),
    python_requires='>=3.8',
    license='Apache License 2.0',
    # torch/torchvision are deliberately not listed: users install the build of the pinned
    # pair that matches their CUDA (see README); listing them would let pip resolve one.
    install_requires=parse_requirements('requirements/runtime.txt'),
    extras_require={'tests': parse_requirements('requirements/tests.txt')},
    zip_safe=False,
)
