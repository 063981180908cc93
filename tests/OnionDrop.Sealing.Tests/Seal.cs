using System.Security.Cryptography;
using OnionDrop.Sealing;

namespace OnionDrop.Sealing.Tests;

/// <summary>Seals in-memory test submissions; deterministic bytes from a seed.</summary>
internal static class Seal
{
    public static readonly DateTimeOffset ReceivedAt = new(2026, 5, 4, 3, 2, 1, TimeSpan.Zero);

    public static Task<byte[]> ToBytesAsync(IReadOnlyList<RecipientPublicKey> recipients, string message, params (string Name, byte[] Data)[] files) =>
        ToBytesAsync("ref-1", recipients, message, files);

    public static async Task<byte[]> ToBytesAsync(string reference, IReadOnlyList<RecipientPublicKey> recipients, string message, params (string Name, byte[] Data)[] files)
    {
        var output = new MemoryStream();
        await using (var sealer = new SubmissionSealer(output, recipients))
        {
            foreach (var (name, data) in files)
            {
                await sealer.BeginFileAsync(name, "application/octet-stream");
                for (var o = 0; o < data.Length; o += 10_000) await sealer.WriteAsync(data.AsMemory(o, Math.Min(10_000, data.Length - o)));
                await sealer.EndFileAsync();
            }
            await sealer.CompleteAsync(reference, message, ReceivedAt);
        }
        return output.ToArray();
    }

    public static byte[] Bytes(int length, int seed)
    {
        var data = new byte[length];
        new Random(seed).NextBytes(data);
        return data;
    }

    public static OpenedSubmission Open(byte[] blob, JournalistKey key, string outputDirectory) =>
        SubmissionOpener.Open(new MemoryStream(blob), key, outputDirectory, "test.sealed");

    /// <summary>A key from tests/vectors copied to a 0600 file, as a journalist keeps one: open warns about the checkout's 0644.</summary>
    public static string PrivateCopy(string vectorKey, OnionDrop.Testing.TempDirectory into)
    {
        var copy = into.Combine(vectorKey);
        File.Copy(Path.Combine(OnionDrop.Testing.RepoPaths.Vectors, vectorKey), copy);
        File.SetUnixFileMode(copy, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        return copy;
    }

    public static string Sha256Hex(string path)
    {
        using var f = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(f));
    }
}

/// <summary>A deterministic pseudo-random stream of a given length (xorshift64*), never held in memory.</summary>
internal sealed class SeededStream(long length, ulong seed) : Stream
{
    private ulong _state = seed | 1;
    private long _position;

    public override int Read(Span<byte> buffer)
    {
        var n = (int)Math.Min(buffer.Length, length - _position);
        if (n <= 0) return 0;
        var words = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ulong>(buffer[..(n & ~7)]);
        for (var i = 0; i < words.Length; i++) words[i] = Next();
        if ((n & 7) != 0)
        {
            Span<byte> last = stackalloc byte[8];
            System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(last, Next());
            last[..(n & 7)].CopyTo(buffer[(n & ~7)..n]);
        }
        _position += n;
        return n;
    }

    private ulong Next()
    {
        _state ^= _state >> 12; _state ^= _state << 25; _state ^= _state >> 27;
        return _state * 0x2545F4914F6CDD1DUL;
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));
    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => length;
    public override long Position { get => _position; set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
