using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;

namespace OnionDrop.Testing;

/// <summary>Where an upload stood when something happened to the daemon.</summary>
public enum UploadPhase { NotStarted, PartHeaders, Body, Sent, Answered, Failed }

/// <summary>
/// One source's upload whose bytes are never held: a file of <see cref="FileBytes"/> bytes generated from
/// <see cref="Seed"/> and a message naming the upload, so whatever the journalist opens can be matched to its
/// upload and checked byte for byte by regenerating it.
/// </summary>
public sealed record SeededUpload(string Label, int Seed, long FileBytes)
{
    public string FileName => Label + ".bin";
    public string Message => $"upload {Label} seed {Seed} bytes {FileBytes}";

    /// <summary>The label back from an opened message, or null.</summary>
    public static string? LabelOf(string message)
    {
        var m = Regex.Match(message, @"^upload (\S+) seed ");
        return m.Success ? m.Groups[1].Value : null;
    }

    /// <summary>Writes the file's bytes, <paramref name="chunk"/> at a time, to <paramref name="sink"/>.</summary>
    public async Task WriteFileAsync(Func<ReadOnlyMemory<byte>, Task> sink, int chunk = 64 * 1024)
    {
        var random = new Random(Seed);
        var buffer = new byte[chunk];
        for (long left = FileBytes; left > 0;)
        {
            var n = (int)Math.Min(chunk, left);
            random.NextBytes(buffer.AsSpan(0, n));
            await sink(buffer.AsMemory(0, n));
            left -= n;
        }
    }

    /// <summary>SHA-256 (hex) of the file's bytes, regenerated.</summary>
    public string FileSha256()
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        WriteFileAsync(m => { hash.AppendData(m.Span); return Task.CompletedTask; }).GetAwaiter().GetResult();
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }
}

/// <summary>How an upload is sent: chunk size and the pause between chunks (a few KiB/s is Tor-like).</summary>
public sealed record UploadPace(int ChunkBytes, TimeSpan Pause)
{
    public static readonly UploadPace Fast = new(64 * 1024, TimeSpan.Zero);
    public static UploadPace BytesPerSecond(int rate, int chunk = 1024) => new(chunk, TimeSpan.FromSeconds((double)chunk / rate));
}

/// <summary>
/// A multipart/form-data body written as it is sent, paced, with a known Content-Length (as a browser sends),
/// reporting its <see cref="UploadPhase"/> as it goes. The part headers themselves go out in two pieces so
/// a fault can land in the middle of them.
/// </summary>
public sealed class PacedMultipartContent : HttpContent
{
    private readonly SeededUpload _upload;
    private readonly UploadPace _pace;
    private readonly Action<UploadPhase> _phase;
    private readonly string _boundary = "----OnionDropReliability" + Guid.NewGuid().ToString("N")[..12];
    private readonly byte[] _fileHead, _between, _tail;

    public PacedMultipartContent(SeededUpload upload, UploadPace pace, Action<UploadPhase> phase)
    {
        (_upload, _pace, _phase) = (upload, pace, phase);
        _fileHead = Encoding.UTF8.GetBytes($"--{_boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{upload.FileName}\"\r\nContent-Type: application/octet-stream\r\n\r\n");
        _between = Encoding.UTF8.GetBytes($"\r\n--{_boundary}\r\nContent-Disposition: form-data; name=\"message\"\r\n\r\n{upload.Message}");
        _tail = Encoding.ASCII.GetBytes($"\r\n--{_boundary}--\r\n");
        Headers.TryAddWithoutValidation("Content-Type", $"multipart/form-data; boundary={_boundary}");
    }

    protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
    {
        _phase(UploadPhase.PartHeaders);
        var half = _fileHead.Length / 2;
        await stream.WriteAsync(_fileHead.AsMemory(0, half), cancellationToken);
        await stream.FlushAsync(cancellationToken);
        await Pause(cancellationToken);
        await stream.WriteAsync(_fileHead.AsMemory(half), cancellationToken);
        _phase(UploadPhase.Body);
        await _upload.WriteFileAsync(async chunk =>
        {
            await stream.WriteAsync(chunk, cancellationToken);
            await stream.FlushAsync(cancellationToken);
            await Pause(cancellationToken);
        }, _pace.ChunkBytes);
        await stream.WriteAsync(_between, cancellationToken);
        await stream.WriteAsync(_tail, cancellationToken);
        await stream.FlushAsync(cancellationToken);
        _phase(UploadPhase.Sent);
    }

    protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) => SerializeToStreamAsync(stream, context, CancellationToken.None);

    private Task Pause(CancellationToken ct) => _pace.Pause > TimeSpan.Zero ? Task.Delay(_pace.Pause, ct) : Task.CompletedTask;

    protected override bool TryComputeLength(out long length)
    {
        length = _fileHead.Length + _upload.FileBytes + _between.Length + _tail.Length;
        return true;
    }
}

/// <summary>What became of one upload, as the source saw it.</summary>
public sealed record UploadOutcome(SeededUpload Upload, UploadPhase Phase, HttpStatusCode? Status, string? Receipt, string? Body, string? Error)
{
    public bool Receipted => Receipt is not null;
}

/// <summary>Sends <see cref="SeededUpload"/>s to a daemon's loopback listener and reads their receipts.</summary>
public sealed class UploadClient : IDisposable
{
    private static readonly Regex ReferencePattern = new(@"id=""reference"">([0-9A-Z]{4}(?:-[0-9A-Z]{4}){4})<", RegexOptions.Compiled);
    private readonly HttpClient _http;

    public UploadClient(Uri baseAddress) =>
        _http = new HttpClient(new SocketsHttpHandler { UseCookies = false, AllowAutoRedirect = false, PooledConnectionLifetime = TimeSpan.Zero })
        { BaseAddress = baseAddress, Timeout = Timeout.InfiniteTimeSpan };

    /// <summary>The reference a receipt page shows, or null if the page is not a receipt.</summary>
    public static string? ReceiptOf(string html) => ReferencePattern.Match(html) is { Success: true } m ? m.Groups[1].Value : null;

    /// <param name="phase">called as the upload moves on (from the sending thread)</param>
    public async Task<UploadOutcome> SendAsync(SeededUpload upload, UploadPace pace, Action<UploadPhase>? phase = null, CancellationToken cancellationToken = default)
    {
        var current = UploadPhase.NotStarted;
        void Move(UploadPhase p) { current = p; phase?.Invoke(p); }
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/?lang=en") { Content = new PacedMultipartContent(upload, pace, Move) };
            request.Headers.ConnectionClose = true; // one upload, one connection, as Tor Browser's circuits make it
            using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseContentRead, cancellationToken);
            var body = await response.Content.ReadAsStringAsync(cancellationToken);
            var receipt = response.StatusCode == HttpStatusCode.OK ? ReceiptOf(body) : null;
            Move(UploadPhase.Answered);
            return new UploadOutcome(upload, UploadPhase.Answered, response.StatusCode, receipt, body, null);
        }
        // A SocketException too: when the daemon dies just as a connection opens, SocketsHttpHandler lets one
        // out unwrapped ("Transport endpoint is not connected", reading the new socket's remote end point).
        catch (Exception e) when (e is HttpRequestException or IOException or OperationCanceledException or System.Net.Sockets.SocketException)
        {
            var at = current;
            phase?.Invoke(UploadPhase.Failed);
            return new UploadOutcome(upload, at, null, null, null, e.GetType().Name + ": " + e.Message);
        }
    }

    public void Dispose() => _http.Dispose();
}
