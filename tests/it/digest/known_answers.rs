//! Known answers from fsverity-utils 1.5, pinned: they break on purpose if the
//! format drifts.
//!
//! Every value below was produced by `/usr/bin/fsverity` (Debian package
//! `fsverity`), with the command written above it, on an input file this test
//! rebuilds itself, so the check needs no fsverity installed:
//! - `rnd(len, seed)`: `len` bytes of [`random_bytes`] (xorshift64, documented
//!   there with a Python equivalent);
//! - `Sparse`: `set_len(len)` on an empty file (one hole), then each island
//!   `(offset, len, seed)` written with `random_bytes(len, seed)`.
//!
//! `digest` is the first word `fsverity digest` prints; `tree_sha256` and
//! `descriptor_sha256` are `sha256sum` of its `--out-merkle-tree` and
//! `--out-descriptor` files. Each case is checked through the library
//! (`build_tree` into a `VecSink`, `Descriptor::encode`/`digest`) and through the
//! `fsverity-fuse digest` binary.
//!
//! To regenerate (after changing an input, never to paper over a failure):
//! `cargo test --test it -- --ignored --nocapture print_known_answers`.

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use fsverity_fuse::format::{
    Descriptor, HashAlgorithm, TreeGeometry, TreeParams, formatted_digest,
};
use fsverity_fuse::merkle::{BuildOptions, DataSource, VecSink, build_tree};

use crate::util::{self, random_bytes, sha256_hex};

/// How a known-answer input file is made.
#[derive(Debug, Clone, Copy)]
enum Input {
    /// `len` bytes of `random_bytes(len, seed)`.
    Random { len: u64, seed: u64 },
    /// `len` bytes, all hole except the islands `(offset, len, seed)`.
    Sparse {
        len: u64,
        islands: &'static [(u64, usize, u64)],
    },
}

const fn rnd(len: u64, seed: u64) -> Input {
    Input::Random { len, seed }
}

/// One pinned answer of fsverity-utils.
#[derive(Debug)]
struct KnownAnswer {
    input: Input,
    /// Options exactly as given to `fsverity digest`.
    options: &'static str,
    /// First word of the output of `fsverity digest <options> FILE`.
    digest: &'static str,
    /// `sha256sum` of the `--out-merkle-tree` file.
    tree_sha256: &'static str,
    /// `sha256sum` of the `--out-descriptor` file.
    descriptor_sha256: &'static str,
}

const MIB: u64 = 1024 * 1024;

/// Islands at the start, across the first 1 MiB boundary (the builder's chunk
/// size), in the middle and at the very end; whole 1 MiB chunks of hole between.
const ISLANDS: &[(u64, usize, u64)] = &[
    (0, 100, 11),
    (MIB - 50, 100, 12),
    (3 * MIB + 12_288, 5000, 13),
    (6 * MIB + 100 - 10, 10, 14),
];

/// SHA-256, 4 KiB blocks (the defaults): empty, 1 byte, block - 1, block, block + 1,
/// and the first level boundary, 128 blocks (524288 bytes), and one byte past it.
const SHA256_4K_SIZES: &[KnownAnswer] = &[
    KnownAnswer {
        // fsverity digest FILE --out-merkle-tree=t --out-descriptor=d && sha256sum t d
        input: rnd(0, 1),
        options: "",
        digest: "sha256:3d248ca542a24fc62d1c43b916eae5016878e2533c88238480b26128a1f1af95",
        tree_sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        descriptor_sha256: "3d248ca542a24fc62d1c43b916eae5016878e2533c88238480b26128a1f1af95",
    },
    KnownAnswer {
        // fsverity digest FILE --out-merkle-tree=t --out-descriptor=d && sha256sum t d
        input: rnd(1, 1),
        options: "",
        digest: "sha256:9845e616f7d2f7a1cd6742f0546a36d2e74d4eb8ae7d9bdc0b0df982c27861b7",
        tree_sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        descriptor_sha256: "9845e616f7d2f7a1cd6742f0546a36d2e74d4eb8ae7d9bdc0b0df982c27861b7",
    },
    KnownAnswer {
        // fsverity digest FILE --out-merkle-tree=t --out-descriptor=d && sha256sum t d
        input: rnd(4095, 2),
        options: "",
        digest: "sha256:f95e7d9335eabbe453e10737f4977bbdb480336b3ee6fed66cbd1ae63ceafaf2",
        tree_sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        descriptor_sha256: "f95e7d9335eabbe453e10737f4977bbdb480336b3ee6fed66cbd1ae63ceafaf2",
    },
    KnownAnswer {
        // fsverity digest FILE --out-merkle-tree=t --out-descriptor=d && sha256sum t d
        input: rnd(4096, 3),
        options: "",
        digest: "sha256:40b1e7ce1bb2772d1722fed5cfa38ca8bb043bbf99ca46a540869158aec14cb1",
        tree_sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        descriptor_sha256: "40b1e7ce1bb2772d1722fed5cfa38ca8bb043bbf99ca46a540869158aec14cb1",
    },
    KnownAnswer {
        // fsverity digest FILE --out-merkle-tree=t --out-descriptor=d && sha256sum t d
        input: rnd(4097, 4),
        options: "",
        digest: "sha256:2800a2ebd755e050a10e57c208be35036b8e7f2aba4b477199d5fb670ee713b3",
        tree_sha256: "b8e1dd1e887c41c6d790c20b508e561007d03462940672728ab42debfb040f33",
        descriptor_sha256: "2800a2ebd755e050a10e57c208be35036b8e7f2aba4b477199d5fb670ee713b3",
    },
    KnownAnswer {
        // fsverity digest FILE --out-merkle-tree=t --out-descriptor=d && sha256sum t d
        input: rnd(524288, 5),
        options: "",
        digest: "sha256:1eee31004bfd8eab13e83b78e0aeab3cc9abf352d1beab838e362f1c6ccd75a0",
        tree_sha256: "73b541226e4881350e7eedd1ceffae1013ee9893f112c34f439719f5d8232a02",
        descriptor_sha256: "1eee31004bfd8eab13e83b78e0aeab3cc9abf352d1beab838e362f1c6ccd75a0",
    },
    KnownAnswer {
        // fsverity digest FILE --out-merkle-tree=t --out-descriptor=d && sha256sum t d
        input: rnd(524289, 6),
        options: "",
        digest: "sha256:5b54d35c8df8344a2a00ca6945f75eebdf1fe868433ed0b11e968383259c569c",
        tree_sha256: "0ba84d6e05ef21a71e6c324c7ddfe931f7d64c9707c728de6f84c9ca204ed509",
        descriptor_sha256: "5b54d35c8df8344a2a00ca6945f75eebdf1fe868433ed0b11e968383259c569c",
    },
];

/// SHA-256, 4 KiB blocks: the second level boundary, 16384 blocks (67108864 bytes),
/// and one byte past it (a third level).
const SHA256_4K_64MIB: &[KnownAnswer] = &[
    KnownAnswer {
        // fsverity digest FILE --out-merkle-tree=t --out-descriptor=d && sha256sum t d
        input: rnd(67108864, 7),
        options: "",
        digest: "sha256:c17d7591f14edb3d58901bf1a4d173b5f70ec4c77e2cc91c32ca9b2d829bafb3",
        tree_sha256: "d04e0fae811a2550d5e7b12349390b5a3bef555cacbc3c6ac14ed6befaf8cb21",
        descriptor_sha256: "c17d7591f14edb3d58901bf1a4d173b5f70ec4c77e2cc91c32ca9b2d829bafb3",
    },
    KnownAnswer {
        // fsverity digest FILE --out-merkle-tree=t --out-descriptor=d && sha256sum t d
        input: rnd(67108865, 8),
        options: "",
        digest: "sha256:982993ecda69d83fd077dae26d31f1872f49bad6def731f6da25cef20078e264",
        tree_sha256: "bcf9d9ca145de979b0051dd69256d19c9bcbf60d46da99df94bab7e616791b5c",
        descriptor_sha256: "982993ecda69d83fd077dae26d31f1872f49bad6def731f6da25cef20078e264",
    },
];

/// Sparse files with real holes: data islands, and a file that is one hole.
const SPARSE_FILES: &[KnownAnswer] = &[
    KnownAnswer {
        // fsverity digest FILE --out-merkle-tree=t --out-descriptor=d && sha256sum t d
        input: Input::Sparse {
            len: 6291556,
            islands: ISLANDS,
        },
        options: "",
        digest: "sha256:cc219ac747753c08d32da0998591f329913ef744c0cc4c4576105e43dfc23108",
        tree_sha256: "f2439df57745029c4e969be91fcc9bee4d9a8871f0c83cd1380d91418dd54afa",
        descriptor_sha256: "cc219ac747753c08d32da0998591f329913ef744c0cc4c4576105e43dfc23108",
    },
    KnownAnswer {
        // fsverity digest --hash-alg=sha512 --block-size=1024 --salt=0123456789abcdef FILE --out-merkle-tree=t --out-descriptor=d && sha256sum t d
        input: Input::Sparse {
            len: 6291556,
            islands: ISLANDS,
        },
        options: "--hash-alg=sha512 --block-size=1024 --salt=0123456789abcdef",
        digest: "sha512:d7a563f5e1b123bd834908c20cd1853350cb973cd421c9674f33eb7583cb89ddbeaea03b8be8d384d84854cdf10f33aaa44f868270390aa9b3afaf902091c13b",
        tree_sha256: "8709771d4757fe9ba0ed65a35e057a0dab9fefed31ed355dc932ef8c33eaeea6",
        descriptor_sha256: "07d34d2f9e1f53a6dc916abb289e99b3cb23751413700ac0f950668d8a0c967a",
    },
    KnownAnswer {
        // fsverity digest FILE --out-merkle-tree=t --out-descriptor=d && sha256sum t d
        input: Input::Sparse {
            len: 2097153,
            islands: &[],
        },
        options: "",
        digest: "sha256:40f29159957233258204fd73bf6afb856f65e17a4f49a56d65eecbc99c85a39e",
        tree_sha256: "0f9a4d2e37e30615feba450f2cc7d46278e033d8e1975292f91d6157f5692420",
        descriptor_sha256: "40f29159957233258204fd73bf6afb856f65e17a4f49a56d65eecbc99c85a39e",
    },
];

/// SHA-512, 4 KiB blocks (64 hashes a block): block edges, 64 blocks (262144 bytes)
/// and 4096 blocks (16777216 bytes), and one byte past each.
const SHA512: &[KnownAnswer] = &[
    KnownAnswer {
        // fsverity digest --hash-alg=sha512 FILE --out-merkle-tree=t --out-descriptor=d && sha256sum t d
        input: rnd(0, 20),
        options: "--hash-alg=sha512",
        digest: "sha512:ccf9e5aea1c2a64efa2f2354a6024b90dffde6bbc017825045dce374474e13d10adb9dadcc6ca8e17a3c075fbd31336e8f266ae6fa93a6c3bed66f9e784e5abf",
        tree_sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        descriptor_sha256: "3efb2cae6bcf7af1b962cf5302ed091a262aff3f1b141733895f12a7494eb016",
    },
    KnownAnswer {
        // fsverity digest --hash-alg=sha512 FILE --out-merkle-tree=t --out-descriptor=d && sha256sum t d
        input: rnd(1, 21),
        options: "--hash-alg=sha512",
        digest: "sha512:489cf03ebb8edb698fb554391d53c646fd3edfe64143f66f393e61f3b3efe1f33e36e678c3998720f33ff9c75bf34b3fdde92f28b1c6008920cffa5fdc9126a9",
        tree_sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        descriptor_sha256: "044594809c9392bca26f8934fc348c4593d7c933213072f97873a643b109174a",
    },
    KnownAnswer {
        // fsverity digest --hash-alg=sha512 FILE --out-merkle-tree=t --out-descriptor=d && sha256sum t d
        input: rnd(4095, 22),
        options: "--hash-alg=sha512",
        digest: "sha512:152cc11b1cbaa0798041e94d660914f46b593219ff2725b0e8311df0286207d3786a1eea2e70fe48a394954aed8961312abd92242443e06b68036fc5e961e74e",
        tree_sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        descriptor_sha256: "085a2a6071a2c7d37bb62e6fe5a3428b7ea595f49de2d6e2a3d1fd31e33413d5",
    },
    KnownAnswer {
        // fsverity digest --hash-alg=sha512 FILE --out-merkle-tree=t --out-descriptor=d && sha256sum t d
        input: rnd(4096, 23),
        options: "--hash-alg=sha512",
        digest: "sha512:ff162188b1adf3e90fc9884b9f87abd84cba29a4f9ea29f1df0232b042e928f4739d6590dffab414fb35ee80ba8e1770b6c4e9ccc1b02bc93c8ac140b5d071b0",
        tree_sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        descriptor_sha256: "eae007c281495317f4ef399223de66150cb750b3820effeb14abc0e62a9b87c0",
    },
    KnownAnswer {
        // fsverity digest --hash-alg=sha512 FILE --out-merkle-tree=t --out-descriptor=d && sha256sum t d
        input: rnd(4097, 24),
        options: "--hash-alg=sha512",
        digest: "sha512:52fa5c00f4cac0914630f4e8b4ef572728294134f1c13c8d570b8c554af640b76eac7f8bbc48acdd9cec735cc6db7fac3ddcec9ac92927643d81f72432b14ffa",
        tree_sha256: "52660f170e81ec502bd72bc8571ea9f0f3ea6dbe25bab429354b323e0e586c69",
        descriptor_sha256: "50ce0cc83310a4664fb54e689aacc9b5b101bd48f39738921ec15af576e93303",
    },
    KnownAnswer {
        // fsverity digest --hash-alg=sha512 FILE --out-merkle-tree=t --out-descriptor=d && sha256sum t d
        input: rnd(262144, 25),
        options: "--hash-alg=sha512",
        digest: "sha512:29ae078d52eed1f39512d4a0fc07d8fb3c34ec0791c2d4873acc899ee84a42ef866d742be14b96788121a3c6f3d27d0f4e159ab815e293622f45a6598dc300e5",
        tree_sha256: "5e2dedbadc9af53083658c67ad6dc68032d1e1f207beea3c72dc4651c82b5328",
        descriptor_sha256: "022ff2fca852c95392b67de0584de96d3b16071c6dc09d09e5cf189b02a65037",
    },
    KnownAnswer {
        // fsverity digest --hash-alg=sha512 FILE --out-merkle-tree=t --out-descriptor=d && sha256sum t d
        input: rnd(262145, 26),
        options: "--hash-alg=sha512",
        digest: "sha512:fb939a1e04fde42c6e7d0410d46c6938ca74496b8e75d7e1a2b74192b9058577c619b90df0e62ff2ed01f9d50d9ed51a04e576d67595212f78029c1d6fa4cf5e",
        tree_sha256: "d458917f057204f5e2a502e2c6665c28da7a262b1e2b01a0e39e0dfb4910a07c",
        descriptor_sha256: "f5a0353736a0c0f26aaede75d5da80ec4cb04e53ce2e43d76bffba07ce059d9a",
    },
    KnownAnswer {
        // fsverity digest --hash-alg=sha512 FILE --out-merkle-tree=t --out-descriptor=d && sha256sum t d
        input: rnd(16777216, 27),
        options: "--hash-alg=sha512",
        digest: "sha512:d025b577dd1012ff9bede3464d02206059e850671a804b39d524e8252457f1843e8aee1d510625f42c40cadcc9a29b74b88068d43a66dda8daad64cd431ceb8c",
        tree_sha256: "2986814cc4c432ca62c3a55eb5f225ba9b152541f6bd6de4bbf861e78d4034e1",
        descriptor_sha256: "86dc08f865d0c65a5ba919c6aec27f6d297e5ccd3db48e942ceed8cdd105a347",
    },
    KnownAnswer {
        // fsverity digest --hash-alg=sha512 FILE --out-merkle-tree=t --out-descriptor=d && sha256sum t d
        input: rnd(16777217, 28),
        options: "--hash-alg=sha512",
        digest: "sha512:f326fa1eec6b6c74a043651bbfd3645e046713466deeab07043aab7301678531529978a1446f07e44892955632595e2f90cb840b6e9dcb27a64d62130e28664e",
        tree_sha256: "07b7356e2e61531bc9d19858ee9b7d7b172bceab52732cec8d7bf53ffcb231ad",
        descriptor_sha256: "db714c256469f239b0deb0f6aee986ab4f2324d2208f1f3ed872847e03feaf25",
    },
];

/// 1 KiB blocks (32 SHA-256 hashes a block: boundaries at 32 and 1024 blocks),
/// 64 KiB blocks, SHA-512 with 1 KiB blocks (16 a block), and the sizes between.
const BLOCK_SIZES: &[KnownAnswer] = &[
    KnownAnswer {
        // fsverity digest --block-size=1024 FILE --out-merkle-tree=t --out-descriptor=d && sha256sum t d
        input: rnd(1023, 40),
        options: "--block-size=1024",
        digest: "sha256:2bc6c32a761201c6ffb373b74afcbb38f3b45ca3c54b37d528ebe12625bf4687",
        tree_sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        descriptor_sha256: "2bc6c32a761201c6ffb373b74afcbb38f3b45ca3c54b37d528ebe12625bf4687",
    },
    KnownAnswer {
        // fsverity digest --block-size=1024 FILE --out-merkle-tree=t --out-descriptor=d && sha256sum t d
        input: rnd(1024, 41),
        options: "--block-size=1024",
        digest: "sha256:45e094e38368769db4f44ccb3a8090f0ef417fa494c1525de21f0bd813df2c6f",
        tree_sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        descriptor_sha256: "45e094e38368769db4f44ccb3a8090f0ef417fa494c1525de21f0bd813df2c6f",
    },
    KnownAnswer {
        // fsverity digest --block-size=1024 FILE --out-merkle-tree=t --out-descriptor=d && sha256sum t d
        input: rnd(1025, 42),
        options: "--block-size=1024",
        digest: "sha256:b4f57520109633d0998bca7038954bfabfbabe4b825f1fae9c23f1e54d758abe",
        tree_sha256: "96c9b37ab3f2a4613af9e38e164805d8ecc3eb3e897f47cb49d28f0cdc11ce3a",
        descriptor_sha256: "b4f57520109633d0998bca7038954bfabfbabe4b825f1fae9c23f1e54d758abe",
    },
    KnownAnswer {
        // fsverity digest --block-size=1024 FILE --out-merkle-tree=t --out-descriptor=d && sha256sum t d
        input: rnd(32768, 43),
        options: "--block-size=1024",
        digest: "sha256:af8c2bebc6ec53344afbbc1cb648ef9da84da5d9171139d0dea54c86fe6e66eb",
        tree_sha256: "3b729f852320a6c1454a698068bfc9607fac93deea43c1c3a68745c9d635641e",
        descriptor_sha256: "af8c2bebc6ec53344afbbc1cb648ef9da84da5d9171139d0dea54c86fe6e66eb",
    },
    KnownAnswer {
        // fsverity digest --block-size=1024 FILE --out-merkle-tree=t --out-descriptor=d && sha256sum t d
        input: rnd(32769, 44),
        options: "--block-size=1024",
        digest: "sha256:afbc6cb0cea1a9323ea58c69f0623900a3bee25a57927e5ef2f89d123bbdd043",
        tree_sha256: "fb4f6dc46c80ae196ec718436ff6fdf790e67529424da865fa8cd86c7c9f7c42",
        descriptor_sha256: "afbc6cb0cea1a9323ea58c69f0623900a3bee25a57927e5ef2f89d123bbdd043",
    },
    KnownAnswer {
        // fsverity digest --block-size=1024 FILE --out-merkle-tree=t --out-descriptor=d && sha256sum t d
        input: rnd(1048576, 45),
        options: "--block-size=1024",
        digest: "sha256:3844ea26f3a9f53a892ac3ac471f66e11765a9afb2758e713b6a59dbca9484fa",
        tree_sha256: "efa7dbecff10cce436aeacf6ac2c0008149237e5e5d27055d3c64af61dba6fa2",
        descriptor_sha256: "3844ea26f3a9f53a892ac3ac471f66e11765a9afb2758e713b6a59dbca9484fa",
    },
    KnownAnswer {
        // fsverity digest --block-size=1024 FILE --out-merkle-tree=t --out-descriptor=d && sha256sum t d
        input: rnd(1048577, 46),
        options: "--block-size=1024",
        digest: "sha256:3e826752f89d1754a37c0f1a8bd8621a6ecb2efb1f1b1d57655aab988ac31e9d",
        tree_sha256: "873c997c365d68d1513ffd61e88cfccd1bfaf3fc86931ddca342095d20d2710c",
        descriptor_sha256: "3e826752f89d1754a37c0f1a8bd8621a6ecb2efb1f1b1d57655aab988ac31e9d",
    },
    KnownAnswer {
        // fsverity digest --block-size=65536 FILE --out-merkle-tree=t --out-descriptor=d && sha256sum t d
        input: rnd(65535, 50),
        options: "--block-size=65536",
        digest: "sha256:27d9638b49f949f550800112f63203c97c3dc94ce788ad45118a32618af256d7",
        tree_sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        descriptor_sha256: "27d9638b49f949f550800112f63203c97c3dc94ce788ad45118a32618af256d7",
    },
    KnownAnswer {
        // fsverity digest --block-size=65536 FILE --out-merkle-tree=t --out-descriptor=d && sha256sum t d
        input: rnd(65536, 51),
        options: "--block-size=65536",
        digest: "sha256:eaa2e145d6b7553fe64fa9937176206e6bf3e1779ec63ccc6f1f2031e7b0a7aa",
        tree_sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        descriptor_sha256: "eaa2e145d6b7553fe64fa9937176206e6bf3e1779ec63ccc6f1f2031e7b0a7aa",
    },
    KnownAnswer {
        // fsverity digest --block-size=65536 FILE --out-merkle-tree=t --out-descriptor=d && sha256sum t d
        input: rnd(65537, 52),
        options: "--block-size=65536",
        digest: "sha256:17708f00fc4f44cac32ae1fcd69011ce1840937ab5f4ef8539fa5e81d5a4d6ab",
        tree_sha256: "7bea1620ba85faf2381584af6d398a7202fd87c22b41990ac652c94b3131ebae",
        descriptor_sha256: "17708f00fc4f44cac32ae1fcd69011ce1840937ab5f4ef8539fa5e81d5a4d6ab",
    },
    KnownAnswer {
        // fsverity digest --block-size=65536 FILE --out-merkle-tree=t --out-descriptor=d && sha256sum t d
        input: rnd(3000000, 53),
        options: "--block-size=65536",
        digest: "sha256:39e37647cc6f6e21d9929458fcd1a4673f819589e5bfe7cbca6d578b2b5aab62",
        tree_sha256: "926e5d1e8e7e432a1d32031378591b8a0926a9617179995a6edb92808f4e862a",
        descriptor_sha256: "39e37647cc6f6e21d9929458fcd1a4673f819589e5bfe7cbca6d578b2b5aab62",
    },
    KnownAnswer {
        // fsverity digest --hash-alg=sha512 --block-size=1024 FILE --out-merkle-tree=t --out-descriptor=d && sha256sum t d
        input: rnd(1024, 60),
        options: "--hash-alg=sha512 --block-size=1024",
        digest: "sha512:359a02ec34168b42d7ebb8d5bec00b2e469a5c8605bb16a54538ff150d261044ecf5675d99a68b3ffdc59308d9ea8d715ff79cbcdcac51369ea4b2dbaf753096",
        tree_sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        descriptor_sha256: "25eb3309e6d0fd8231dcbcfd620275520f40027d8e115404e47ee11fbcaa7e7a",
    },
    KnownAnswer {
        // fsverity digest --hash-alg=sha512 --block-size=1024 FILE --out-merkle-tree=t --out-descriptor=d && sha256sum t d
        input: rnd(16384, 61),
        options: "--hash-alg=sha512 --block-size=1024",
        digest: "sha512:8ad53058a3264417d196269b02841af982d6750090aa88e80d1667b10978539875e903883509b407a4b4e3cf537ab89d30c4d3a879066b17346ca8ebaed5642c",
        tree_sha256: "74ab9fa404c4fc28fbd4b24e28a2c9f289a1600798dc2572ef9b5f54af9b82f5",
        descriptor_sha256: "7b427af7f2051af09d448ccdcde57a877f1ddf6983195f3b83dd585063ef46fc",
    },
    KnownAnswer {
        // fsverity digest --hash-alg=sha512 --block-size=1024 FILE --out-merkle-tree=t --out-descriptor=d && sha256sum t d
        input: rnd(16385, 62),
        options: "--hash-alg=sha512 --block-size=1024",
        digest: "sha512:c54e72d7b76a54e33eaf0e8f54fb6541693e40a7ba635b7f4d1c661daaea5be6889e73fdf65135e82357c71a057839481025ff57225a49cf53fd6475eadb0c23",
        tree_sha256: "e3527efcab336908629a2aebbe04ee48dac61457e45e3e7d11f8b0aec71d84a4",
        descriptor_sha256: "a74442bd3f59f0214fe56df63b9cead3e1fce74ff93e1fc536ed119f51d62cd3",
    },
    KnownAnswer {
        // fsverity digest --hash-alg=sha512 --block-size=1024 FILE --out-merkle-tree=t --out-descriptor=d && sha256sum t d
        input: rnd(262144, 63),
        options: "--hash-alg=sha512 --block-size=1024",
        digest: "sha512:1595702d56f6cb9bc3a20c2d544283bafc0ce50d10a5637d361409010752406634d96326e0281d869fd420bc5251735ac54a305c164466ff25b46c0b619cadb4",
        tree_sha256: "dc22c6da6151b27bf19dbbc555ef97c945cdab37ee8b7938fe55219d4dae39cb",
        descriptor_sha256: "0f74b36df2c48bfb531e0f5305fbe9d77462466aed3ad400cd4b908c96cdf62e",
    },
    KnownAnswer {
        // fsverity digest --hash-alg=sha512 --block-size=1024 FILE --out-merkle-tree=t --out-descriptor=d && sha256sum t d
        input: rnd(262145, 64),
        options: "--hash-alg=sha512 --block-size=1024",
        digest: "sha512:a70d0d6cdb9ec148af140fa8eb5d54be0e44d2b14a6f25a722f985bc7526ea7373de57e864f202d97494e11002b8d1c50095a3a515a52b756603f32f9ce78b73",
        tree_sha256: "549a31733edf48efc502c39e4bb83ed23683f088a428d66f612aa179b0d620f9",
        descriptor_sha256: "2fe665dfd99e37e53acf8d497548a836e4d0a01d1c7c0e3157c858019af6e035",
    },
    KnownAnswer {
        // fsverity digest --block-size=2048 FILE --out-merkle-tree=t --out-descriptor=d && sha256sum t d
        input: rnd(100000, 70),
        options: "--block-size=2048",
        digest: "sha256:bdd8f793329026b0dad55601693592d94ea9903480e42fff2222f66f903d6004",
        tree_sha256: "2986173ea0fb9849d715c1b439da246c6eb2b1077c286f0438710f0461bab513",
        descriptor_sha256: "bdd8f793329026b0dad55601693592d94ea9903480e42fff2222f66f903d6004",
    },
    KnownAnswer {
        // fsverity digest --block-size=8192 FILE --out-merkle-tree=t --out-descriptor=d && sha256sum t d
        input: rnd(100000, 71),
        options: "--block-size=8192",
        digest: "sha256:c8525baa18fb28db840aab5a04549eebfbf9a7388461e55b1c5bd6cbff4b52a5",
        tree_sha256: "7ad10d0ac16f84dd4b203d2b92680c2dde9037bb167040594b40fdac94c298da",
        descriptor_sha256: "c8525baa18fb28db840aab5a04549eebfbf9a7388461e55b1c5bd6cbff4b52a5",
    },
    KnownAnswer {
        // fsverity digest --block-size=16384 FILE --out-merkle-tree=t --out-descriptor=d && sha256sum t d
        input: rnd(1000000, 72),
        options: "--block-size=16384",
        digest: "sha256:c64e1be51ec3ec866c1aa531ffc1ba6648ec69c62946a66a8fbd4e0bf1e42829",
        tree_sha256: "7cbb3608106f3b4c0f7fe5094c83e3caf54d55a34ad01c679ba05d78adefd448",
        descriptor_sha256: "c64e1be51ec3ec866c1aa531ffc1ba6648ec69c62946a66a8fbd4e0bf1e42829",
    },
    KnownAnswer {
        // fsverity digest --block-size=32768 FILE --out-merkle-tree=t --out-descriptor=d && sha256sum t d
        input: rnd(1000000, 73),
        options: "--block-size=32768",
        digest: "sha256:b7a24311ed2876401e670a366d3d34f4b4afd86092d9047033a7f1edb5732333",
        tree_sha256: "b7af86d17c00c554cb825f859fbbaa8e05c38668b56f85cc1c44875819a33437",
        descriptor_sha256: "b7a24311ed2876401e670a366d3d34f4b4afd86092d9047033a7f1edb5732333",
    },
    KnownAnswer {
        // fsverity digest --hash-alg=sha512 --block-size=65536 FILE --out-merkle-tree=t --out-descriptor=d && sha256sum t d
        input: rnd(200000, 74),
        options: "--hash-alg=sha512 --block-size=65536",
        digest: "sha512:1c8660bb7893ea38bf3c0d6dd5128a961d79856aa317237e338628a0bc06e641ff7d39a27ebbe4e984630b960bb5e0bf130ddb62f604cd467514f0c3a835d0dd",
        tree_sha256: "41956effdc04bdfa0937eaf13e06ece2f57f9c6817a3dddbb0daf9ebc09b4142",
        descriptor_sha256: "db4e5218bff2d4fbb778ba4dd8641d140843ad1e6bd9ac0fab5f13e6dafabc0b",
    },
];

/// Salts: explicit empty, 4 bytes, 32 bytes; on empty, one-block and multi-level files.
const SALTS: &[KnownAnswer] = &[
    KnownAnswer {
        // fsverity digest --salt= FILE --out-merkle-tree=t --out-descriptor=d && sha256sum t d
        input: rnd(100000, 80),
        options: "--salt=",
        digest: "sha256:36fa119404ebdb304e21f519fd8d6e66a265bd94c19ccdda208b4cb167d47ca6",
        tree_sha256: "df8607cc002d707bc7b1f2072a2faeca0555f8b3aff45e01fceb6e4f7b799517",
        descriptor_sha256: "36fa119404ebdb304e21f519fd8d6e66a265bd94c19ccdda208b4cb167d47ca6",
    },
    KnownAnswer {
        // fsverity digest --salt=deadbeef FILE --out-merkle-tree=t --out-descriptor=d && sha256sum t d
        input: rnd(0, 81),
        options: "--salt=deadbeef",
        digest: "sha256:a3448910cd70aa6d1613c760910d5fb9ab212f0337b156e0c7df3f1e8f92a926",
        tree_sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        descriptor_sha256: "a3448910cd70aa6d1613c760910d5fb9ab212f0337b156e0c7df3f1e8f92a926",
    },
    KnownAnswer {
        // fsverity digest --salt=deadbeef FILE --out-merkle-tree=t --out-descriptor=d && sha256sum t d
        input: rnd(1, 82),
        options: "--salt=deadbeef",
        digest: "sha256:0f3cb5ca73a60669d9bf594a9bdd53c20b9b97edaa559c2c752161bc0604bd52",
        tree_sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        descriptor_sha256: "0f3cb5ca73a60669d9bf594a9bdd53c20b9b97edaa559c2c752161bc0604bd52",
    },
    KnownAnswer {
        // fsverity digest --salt=deadbeef FILE --out-merkle-tree=t --out-descriptor=d && sha256sum t d
        input: rnd(100000, 80),
        options: "--salt=deadbeef",
        digest: "sha256:738f3dda1106da06d128f95dc66cc7c397d89ac4ed1e4ce0fed1ba6603972185",
        tree_sha256: "1882a08eda778bc2489b8ae9ed57029734d6dd8022ca8c16b0549a75f535692d",
        descriptor_sha256: "738f3dda1106da06d128f95dc66cc7c397d89ac4ed1e4ce0fed1ba6603972185",
    },
    KnownAnswer {
        // fsverity digest --salt=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f FILE --out-merkle-tree=t --out-descriptor=d && sha256sum t d
        input: rnd(100000, 80),
        options: "--salt=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
        digest: "sha256:ea691b7e75efb22bd6b6fd386a0ea0ab3cfbc3db4ff4584b25525def49c5abfb",
        tree_sha256: "0ee476bd105596400e4e7a9145b5cfbb529364b2167e55e0522e07339d6a77d1",
        descriptor_sha256: "ea691b7e75efb22bd6b6fd386a0ea0ab3cfbc3db4ff4584b25525def49c5abfb",
    },
    KnownAnswer {
        // fsverity digest --hash-alg=sha512 --salt=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f FILE --out-merkle-tree=t --out-descriptor=d && sha256sum t d
        input: rnd(100000, 80),
        options: "--hash-alg=sha512 --salt=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
        digest: "sha512:baae87ac70543e4de19cbabb988d857a418440f725b43e46f27fd607ce547030d80ff8c56644e9ce0505ae253ac52d835bd10483f069732e2ef8a9ead07591c6",
        tree_sha256: "a9598e86759270bf3245b52c134317ca740f72e84419917ffb9d2b611d4e5043",
        descriptor_sha256: "926abb1aa5808128caeb7411baf7e9bf2f5fcb009293a9cd24ac39f2cad132e8",
    },
    KnownAnswer {
        // fsverity digest --hash-alg=sha512 --salt=deadbeef FILE --out-merkle-tree=t --out-descriptor=d && sha256sum t d
        input: rnd(4097, 83),
        options: "--hash-alg=sha512 --salt=deadbeef",
        digest: "sha512:a765b08a84499690e4ce6a611d80144ffc6e3411fdb915901419bf9e3091093a2c719f303bed66a70eaa2d0f9a182fcbd759f7c3dbe36eb4f5a27ba97419a665",
        tree_sha256: "d3375b0b57700425a668874370a13d3d6c615aabcf50ca95262468356ef3f411",
        descriptor_sha256: "6811b0fe65a6d868374cab4ba3ae71af3bdcf2527d62d6208cdd29f73a1105e1",
    },
    KnownAnswer {
        // fsverity digest --hash-alg=sha512 --salt=e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff FILE --out-merkle-tree=t --out-descriptor=d && sha256sum t d
        input: rnd(0, 84),
        options: "--hash-alg=sha512 --salt=e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
        digest: "sha512:15892b254d20853e1c743404e5620d6a050946dc36491bd025ac53dc0340df30496c44cca4ba9359fd5aea26b385a53d09e849fa9244ecf8ab7df9594e5296d0",
        tree_sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        descriptor_sha256: "01a89341d83392d0197b9b2f35404a7c8ef81466928bf1f4a7bfa2f9d034b148",
    },
    KnownAnswer {
        // fsverity digest --block-size=1024 --salt=e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff FILE --out-merkle-tree=t --out-descriptor=d && sha256sum t d
        input: rnd(33000, 85),
        options: "--block-size=1024 --salt=e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
        digest: "sha256:24832fce96310e5c81d370b6d15c1f8c36d27d5b448107f50b9066ccc20cdbd1",
        tree_sha256: "c9c8ef98ef4960a6bf396cb107ff15ec477b5993738116f9365a9d9f819ec43c",
        descriptor_sha256: "24832fce96310e5c81d370b6d15c1f8c36d27d5b448107f50b9066ccc20cdbd1",
    },
    KnownAnswer {
        // fsverity digest --block-size=65536 --salt=00 FILE --out-merkle-tree=t --out-descriptor=d && sha256sum t d
        input: rnd(600000, 86),
        options: "--block-size=65536 --salt=00",
        digest: "sha256:9eacf67908e0b5ac4592ae5ac76d9ec231259a5646ede2881d8a9c3fe85aa165",
        tree_sha256: "7a4188545e9c0c16a71c2d7982024f35b55008d238252fb179fcf615d6111ed4",
        descriptor_sha256: "9eacf67908e0b5ac4592ae5ac76d9ec231259a5646ede2881d8a9c3fe85aa165",
    },
];

/// `--compact` and `--for-builtin-sig` (the formatted digest), alone and together.
const OUTPUT_FORMS: &[KnownAnswer] = &[
    KnownAnswer {
        // fsverity digest --compact FILE --out-merkle-tree=t --out-descriptor=d && sha256sum t d
        input: rnd(5000, 90),
        options: "--compact",
        digest: "5b6012f05f3cd1f2d8467d0bc214b3f45a8a62875c9edd57ddc2040a7452e368",
        tree_sha256: "32883ce402d7c64aef276ace4966e8b0e69f2bb764b20d56c40b9a0d64b481ee",
        descriptor_sha256: "5b6012f05f3cd1f2d8467d0bc214b3f45a8a62875c9edd57ddc2040a7452e368",
    },
    KnownAnswer {
        // fsverity digest --for-builtin-sig FILE --out-merkle-tree=t --out-descriptor=d && sha256sum t d
        input: rnd(5000, 90),
        options: "--for-builtin-sig",
        digest: "4653566572697479010020005b6012f05f3cd1f2d8467d0bc214b3f45a8a62875c9edd57ddc2040a7452e368",
        tree_sha256: "32883ce402d7c64aef276ace4966e8b0e69f2bb764b20d56c40b9a0d64b481ee",
        descriptor_sha256: "5b6012f05f3cd1f2d8467d0bc214b3f45a8a62875c9edd57ddc2040a7452e368",
    },
    KnownAnswer {
        // fsverity digest --for-builtin-sig --compact --hash-alg=sha512 FILE --out-merkle-tree=t --out-descriptor=d && sha256sum t d
        input: rnd(5000, 90),
        options: "--for-builtin-sig --compact --hash-alg=sha512",
        digest: "465356657269747902004000e3e04bbc8d9178b2fb658c42d4e66248d4c406b19a59df28cbd9cc2807f9fb944fb621c6e1d9a645a253985c5523278da4703a2690ec0bf235a8e8ae91ae82d1",
        tree_sha256: "e98f8711bb9d00eac7131c87b983aae05bd5090efec273dd0d569574e51b340b",
        descriptor_sha256: "4cde8972e6f454a8660e1447c19f3a90c8864db1915982923ffcf39e5cb42f16",
    },
    KnownAnswer {
        // fsverity digest --for-builtin-sig --block-size=1024 FILE --out-merkle-tree=t --out-descriptor=d && sha256sum t d
        input: rnd(0, 91),
        options: "--for-builtin-sig --block-size=1024",
        digest: "465356657269747901002000f2cca36b9b1b7f07814e4284b10121809133e7cb9c4528c8f6846e85fc624ffa",
        tree_sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        descriptor_sha256: "f2cca36b9b1b7f07814e4284b10121809133e7cb9c4528c8f6846e85fc624ffa",
    },
];

/// Runs every case of `table` through the library and the binary.
fn check_table(name: &str, table: &[KnownAnswer]) {
    let dir = util::temp_dir(name);
    for (i, case) in table.iter().enumerate() {
        let file = dir.path().join(format!("input-{i}"));
        make_input(&file, case.input);
        let what = format!("{name}[{i}] {:?} {}", case.input, case.options);
        check_library(&file, case, &what);
        check_binary(dir.path(), &file, case, &what);
        std::fs::remove_file(&file).expect("remove the input");
    }
}

/// Creates the input file of a case.
fn make_input(path: &Path, input: Input) {
    match input {
        Input::Random { len, seed } => util::write(path, &random_bytes(to_usize(len), seed)),
        Input::Sparse { len, islands } => {
            let file = File::create(path).expect("create the sparse input");
            file.set_len(len).expect("set_len");
            for &(offset, n, seed) in islands {
                file.write_all_at(&random_bytes(n, seed), offset)
                    .expect("write an island");
            }
            let allocated = file.metadata().expect("stat").blocks() * 512;
            if allocated >= len {
                eprintln!(
                    "NOTICE: {} has no holes on this filesystem ({allocated} bytes allocated)",
                    path.display()
                );
            }
        }
    }
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).expect("test sizes fit in memory")
}

/// What a case's options ask for, parsed the way `fsverity digest` reads them.
struct Options {
    params: TreeParams,
    compact: bool,
    for_builtin_sig: bool,
}

fn parse_options(options: &str) -> Options {
    let (mut alg, mut block_size, mut salt) = (HashAlgorithm::Sha256, 4096, Vec::new());
    let (mut compact, mut for_builtin_sig) = (false, false);
    for opt in options.split_whitespace() {
        match opt.split_once('=') {
            Some(("--hash-alg", v)) => alg = v.parse().expect("known algorithm"),
            Some(("--block-size", v)) => block_size = v.parse().expect("numeric block size"),
            Some(("--salt", v)) => salt = hex::decode(v).expect("hex salt"),
            None if opt == "--compact" => compact = true,
            None if opt == "--for-builtin-sig" => for_builtin_sig = true,
            _ => panic!("option {opt} is not understood by this test"),
        }
    }
    Options {
        params: TreeParams::new(alg, block_size, &salt).expect("valid parameters"),
        compact,
        for_builtin_sig,
    }
}

/// The first word `fsverity digest` prints for `descriptor`.
fn printed_digest(descriptor: &Descriptor, options: &Options) -> String {
    let digest = descriptor.digest();
    if options.for_builtin_sig {
        hex::encode(formatted_digest(descriptor.algorithm(), &digest))
    } else if options.compact {
        digest.to_hex()
    } else {
        format!("{}:{}", descriptor.algorithm(), digest.to_hex())
    }
}

/// Builds the tree with the library over `source` and checks everything pinned.
fn check_source(source: &dyn DataSource, case: &KnownAnswer, threads: usize, what: &str) {
    let options = parse_options(case.options);
    let mut sink = VecSink::default();
    let descriptor = build_tree(source, &options.params, &mut sink, BuildOptions { threads })
        .unwrap_or_else(|e| panic!("{what}: build_tree failed: {e}"));
    let what = format!("{what} (library, threads={threads})");
    assert_eq!(
        printed_digest(&descriptor, &options),
        case.digest,
        "{what}: digest"
    );
    assert_eq!(sha256_hex(&sink.0), case.tree_sha256, "{what}: tree");
    let encoded = descriptor.encode();
    assert_eq!(
        sha256_hex(&encoded),
        case.descriptor_sha256,
        "{what}: descriptor"
    );
    assert_eq!(
        Descriptor::decode(&encoded).as_ref(),
        Ok(&descriptor),
        "{what}: decode(encode(d)) == d"
    );
    let size = source.size().expect("size");
    assert_eq!(descriptor.data_size(), size, "{what}: data size");
    let geometry = TreeGeometry::new(
        size,
        options.params.log_block_size(),
        options.params.algorithm().digest_size(),
    )
    .expect("geometry");
    assert_eq!(
        sink.0.len() as u64,
        geometry.tree_size(),
        "{what}: tree size"
    );
}

fn check_library(path: &Path, case: &KnownAnswer, what: &str) {
    let data = util::read(path);
    // The sequential path, and the parallel one where the file is large enough.
    check_source(&data, case, 1, what);
    if data.len() >= 4 * 1024 * 1024 {
        check_source(&data, case, 0, what);
    }
    if let Input::Sparse { .. } = case.input {
        // Through the file itself, so holes are recognised and skipped.
        let file = File::open(path).expect("open the sparse input");
        check_source(&file, case, 1, what);
        check_source(&file, case, 0, what);
    }
}

fn check_binary(dir: &Path, file: &Path, case: &KnownAnswer, what: &str) {
    let tree = dir.join("tree");
    let desc = dir.join("descriptor");
    let mut args = vec!["digest".to_owned()];
    args.extend(case.options.split_whitespace().map(str::to_owned));
    args.push(file.display().to_string());
    args.push(format!("--out-merkle-tree={}", tree.display()));
    args.push(format!("--out-descriptor={}", desc.display()));
    let out = util::run_bin(&args);
    out.expect_success();
    let expected = if case.options.contains("--compact") {
        format!("{}\n", case.digest)
    } else {
        format!("{} {}\n", case.digest, file.display())
    };
    let what = format!("{what} (binary)");
    assert_eq!(out.stdout, expected, "{what}: stdout");
    assert_eq!(
        sha256_hex(&util::read(&tree)),
        case.tree_sha256,
        "{what}: tree"
    );
    assert_eq!(
        sha256_hex(&util::read(&desc)),
        case.descriptor_sha256,
        "{what}: descriptor"
    );
}

#[test]
fn sha256_4k_sizes() {
    check_table("sha256_4k_sizes", SHA256_4K_SIZES);
}

#[test]
fn sha256_4k_64mib_level_boundary() {
    check_table("sha256_4k_64mib", SHA256_4K_64MIB);
}

#[test]
fn sparse_files() {
    check_table("sparse_files", SPARSE_FILES);
}

#[test]
fn sha512() {
    check_table("sha512", SHA512);
}

#[test]
fn block_sizes() {
    check_table("block_sizes", BLOCK_SIZES);
}

#[test]
fn salts() {
    check_table("salts", SALTS);
}

#[test]
fn output_forms() {
    check_table("output_forms", OUTPUT_FORMS);
}

/// Every table, for regeneration (which prints the bodies; the docs above stay).
const TABLES: &[(&str, &[KnownAnswer])] = &[
    ("SHA256_4K_SIZES", SHA256_4K_SIZES),
    ("SHA256_4K_64MIB", SHA256_4K_64MIB),
    ("SPARSE_FILES", SPARSE_FILES),
    ("SHA512", SHA512),
    ("BLOCK_SIZES", BLOCK_SIZES),
    ("SALTS", SALTS),
    ("OUTPUT_FORMS", OUTPUT_FORMS),
];

/// Prints every table with its values recomputed by `/usr/bin/fsverity`, in the
/// form of the source above.
#[test]
#[ignore = "regenerates the known answers with /usr/bin/fsverity; run with --ignored --nocapture"]
fn print_known_answers() {
    let fsverity = util::fsverity_oracle().expect("/usr/bin/fsverity is needed to regenerate");
    let dir = util::temp_dir("print_known_answers");
    let file = dir.path().join("FILE");
    for (name, table) in TABLES {
        println!("const {name}: &[KnownAnswer] = &[");
        for case in *table {
            make_input(&file, case.input);
            let mut args = vec!["digest".to_owned()];
            args.extend(case.options.split_whitespace().map(str::to_owned));
            args.extend([
                "FILE".to_owned(),
                "--out-merkle-tree=t".to_owned(),
                "--out-descriptor=d".to_owned(),
            ]);
            let out = std::process::Command::new(&fsverity)
                .args(&args)
                .current_dir(dir.path())
                .output()
                .expect("run fsverity");
            assert!(out.status.success(), "fsverity {args:?}: {out:?}");
            let stdout = String::from_utf8(out.stdout).expect("utf-8");
            let digest = stdout.split_whitespace().next().expect("a digest");
            let sums = std::process::Command::new("sha256sum")
                .args(["t", "d"])
                .current_dir(dir.path())
                .output()
                .expect("run sha256sum");
            let sums = String::from_utf8(sums.stdout).expect("utf-8");
            let sums: Vec<&str> = sums
                .lines()
                .filter_map(|l| l.split_whitespace().next())
                .collect();
            let input = match case.input {
                Input::Random { len, seed } => format!("rnd({len}, {seed})"),
                Input::Sparse { len, islands: [] } => {
                    format!("Input::Sparse {{ len: {len}, islands: &[] }}")
                }
                Input::Sparse { len, .. } => {
                    format!("Input::Sparse {{ len: {len}, islands: ISLANDS }}")
                }
            };
            println!("    KnownAnswer {{");
            println!("        // fsverity {} && sha256sum t d", args.join(" "));
            println!("        input: {input},");
            println!("        options: {:?},", case.options);
            println!("        digest: {digest:?},");
            println!("        tree_sha256: {:?},", sums[0]);
            println!("        descriptor_sha256: {:?},", sums[1]);
            println!("    }},");
        }
        println!("];");
    }
}
