using System.Runtime.InteropServices;
using System.Security.Cryptography;
using Sodium;

namespace OnionDrop.Sealing.Interop;

/// <summary>
/// libsodium's crypto_secretstream_xchacha20poly1305, which Sodium.Core does not wrap. A thin binding only:
/// every byte of crypto is libsodium's (https://doc.libsodium.org/secret-key_cryptography/secretstream).
/// One instance is one direction of one stream; it keeps its 52-byte state in a pinned array and is not
/// thread-safe. Spans in, no allocations per chunk.
/// </summary>
public sealed unsafe class SecretStream : IDisposable
{
    public const int KeyBytes = 32;
    public const int HeaderBytes = 24;
    /// <summary>Per-chunk overhead: 1 encrypted tag byte + 16-byte Poly1305 MAC.</summary>
    public const int ABytes = 17;
    public const byte TagMessage = 0;
    public const byte TagFinal = 3;

    private readonly byte[] _state;
    private readonly bool _push;

    static SecretStream()
    {
        // Sodium.Core's own initialiser loads and initialises the same native libsodium.
        SodiumCore.Init();
        if (Native.crypto_secretstream_xchacha20poly1305_keybytes() != KeyBytes
            || Native.crypto_secretstream_xchacha20poly1305_headerbytes() != HeaderBytes
            || Native.crypto_secretstream_xchacha20poly1305_abytes() != ABytes
            || Native.crypto_secretstream_xchacha20poly1305_tag_final() != TagFinal)
            throw new PlatformNotSupportedException("the native libsodium's secretstream constants differ from the format's");
    }

    private SecretStream(bool push)
    {
        _push = push;
        _state = GC.AllocateArray<byte>((int)Native.crypto_secretstream_xchacha20poly1305_statebytes(), pinned: true);
    }

    /// <summary>Starts an encrypting stream: writes its 24-byte header (a fresh random nonce) to <paramref name="header"/>.</summary>
    public static SecretStream InitPush(ReadOnlySpan<byte> key, Span<byte> header)
    {
        if (key.Length != KeyBytes) throw new ArgumentException("secretstream key must be 32 bytes", nameof(key));
        if (header.Length != HeaderBytes) throw new ArgumentException("secretstream header must be 24 bytes", nameof(header));
        var s = new SecretStream(push: true);
        fixed (byte* st = s._state, h = header, k = key)
            if (Native.crypto_secretstream_xchacha20poly1305_init_push(st, h, k) != 0)
                throw new CryptographicException("crypto_secretstream init_push failed");
        return s;
    }

    /// <summary>Starts a decrypting stream from the sender's header.</summary>
    public static SecretStream InitPull(ReadOnlySpan<byte> key, ReadOnlySpan<byte> header)
    {
        if (key.Length != KeyBytes) throw new ArgumentException("secretstream key must be 32 bytes", nameof(key));
        if (header.Length != HeaderBytes) throw new ArgumentException("secretstream header must be 24 bytes", nameof(header));
        var s = new SecretStream(push: false);
        fixed (byte* st = s._state, h = header, k = key)
            if (Native.crypto_secretstream_xchacha20poly1305_init_pull(st, h, k) != 0)
                throw new CryptographicException("crypto_secretstream init_pull rejected the header");
        return s;
    }

    /// <summary>Encrypts one chunk; <paramref name="ciphertext"/> needs plaintext.Length + 17 bytes. Returns bytes written.</summary>
    public int Push(ReadOnlySpan<byte> plaintext, Span<byte> ciphertext, ReadOnlySpan<byte> additionalData, byte tag)
    {
        if (!_push) throw new InvalidOperationException("this stream decrypts");
        if (ciphertext.Length < plaintext.Length + ABytes) throw new ArgumentException("ciphertext buffer too small", nameof(ciphertext));
        ulong clen;
        fixed (byte* st = _state, c = ciphertext, m = plaintext, ad = additionalData)
            if (Native.crypto_secretstream_xchacha20poly1305_push(st, c, &clen, m, (ulong)plaintext.Length, ad, (ulong)additionalData.Length, tag) != 0)
                throw new CryptographicException("crypto_secretstream push failed");
        return (int)clen;
    }

    /// <summary>
    /// Decrypts and verifies one chunk into <paramref name="plaintext"/> (ciphertext.Length - 17 bytes).
    /// Returns false when the chunk does not authenticate (corrupt, reordered, truncated, wrong additional data).
    /// </summary>
    public bool TryPull(ReadOnlySpan<byte> ciphertext, Span<byte> plaintext, ReadOnlySpan<byte> additionalData, out int written, out byte tag)
    {
        if (_push) throw new InvalidOperationException("this stream encrypts");
        written = 0;
        tag = 0;
        if (ciphertext.Length < ABytes) return false;
        if (plaintext.Length < ciphertext.Length - ABytes) throw new ArgumentException("plaintext buffer too small", nameof(plaintext));
        ulong mlen;
        byte t;
        fixed (byte* st = _state, c = ciphertext, m = plaintext, ad = additionalData)
            if (Native.crypto_secretstream_xchacha20poly1305_pull(st, m, &mlen, &t, c, (ulong)ciphertext.Length, ad, (ulong)additionalData.Length) != 0)
                return false;
        written = (int)mlen;
        tag = t;
        return true;
    }

    public void Dispose() => CryptographicOperations.ZeroMemory(_state);

    private static class Native
    {
        private const string Lib = "libsodium";

        [DllImport(Lib)] public static extern nuint crypto_secretstream_xchacha20poly1305_statebytes();
        [DllImport(Lib)] public static extern nuint crypto_secretstream_xchacha20poly1305_keybytes();
        [DllImport(Lib)] public static extern nuint crypto_secretstream_xchacha20poly1305_headerbytes();
        [DllImport(Lib)] public static extern nuint crypto_secretstream_xchacha20poly1305_abytes();
        [DllImport(Lib)] public static extern byte crypto_secretstream_xchacha20poly1305_tag_final();
        [DllImport(Lib)] public static extern int crypto_secretstream_xchacha20poly1305_init_push(byte* state, byte* header, byte* k);
        [DllImport(Lib)] public static extern int crypto_secretstream_xchacha20poly1305_init_pull(byte* state, byte* header, byte* k);
        [DllImport(Lib)] public static extern int crypto_secretstream_xchacha20poly1305_push(byte* state, byte* c, ulong* clen, byte* m, ulong mlen, byte* ad, ulong adlen, byte tag);
        [DllImport(Lib)] public static extern int crypto_secretstream_xchacha20poly1305_pull(byte* state, byte* m, ulong* mlen, byte* tag, byte* c, ulong clen, byte* ad, ulong adlen);
    }
}
