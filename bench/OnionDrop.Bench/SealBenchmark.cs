using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using OnionDrop.Sealing;
using OnionDrop.Storage;

namespace OnionDrop.Bench;

/// <summary>
/// Sealing throughput beside the machine's two limits, measured in the same run: libsodium's raw secretstream
/// (memory to memory) and the disk (dd conv=fdatasync). Sealing to a file with fsync runs in a child process
/// so its peak memory (VmHWM) is the sealer's alone, runtime included; so does sealing into the real
/// SealedBlobStore (hashing, fsync, rename, catalog commit): the issue's "sealing and storing".
/// Usage: oniondrop-bench seal [--size-mib N] [--dir DIR]
/// </summary>
public sealed class SealBenchmark : IBenchmark
{
    public string Name => "seal";
    public IReadOnlyList<string> Tools(string[] args) => ["dd"];
    public string Description => "seal 1 GiB to a file with fsync, vs raw libsodium secretstream and dd; peak memory";

    private const int Recipients = 3;
    private const int WriteSize = 64 * 1024;   // what a multipart reader typically hands over

    public async Task<int> RunAsync(string[] args)
    {
        if (args.Length == 3 && args[0] is "--child" or "--child-store") return await ChildAsync(args[0] == "--child-store", args[1], long.Parse(args[2], CultureInfo.InvariantCulture));
        var sizeMiB = 1024;
        var dir = Path.GetTempPath();
        for (var i = 0; i + 1 < args.Length; i += 2)
            switch (args[i])
            {
                case "--size-mib": sizeMiB = int.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
                case "--dir": dir = args[i + 1]; break;
                default: Console.Error.WriteLine("usage: oniondrop-bench seal [--size-mib N] [--dir DIR]"); return 2;
            }
        var bytes = sizeMiB * 1024L * 1024;
        var work = Directory.CreateTempSubdirectory("oniondrop-bench-seal-").FullName;
        if (dir != Path.GetTempPath()) { Directory.Delete(work); work = Directory.CreateDirectory(Path.Combine(dir, "oniondrop-bench-seal-" + Environment.ProcessId)).FullName; }
        try
        {
            Console.WriteLine($"seal: {sizeMiB} MiB, {Recipients} recipients, writes of {WriteSize / 1024} KiB, files in {work}");
            var dd = await MachineLimits.DiskMBpsAsync(Path.Combine(work, "dd.tmp"), sizeMiB);
            var (raw, rawCpu) = await PerCpuSecond(() => Task.FromResult(MachineLimits.RawSecretStreamMBps(bytes)), bytes);
            var sha = MachineLimits.Sha256MBps(bytes);
            var (cpu, sealCpu) = await PerCpuSecond(() => SealAsync(Stream.Null, bytes), bytes);
            var (sealed_, peak) = await SealInChildAsync("--child", Path.Combine(work, "sealed.tmp"), bytes);
            var (stored, storePeak) = await SealInChildAsync("--child-store", Path.Combine(work, "data"), bytes);
            var limit = Math.Min(dd, raw);

            Console.WriteLine($"  {"disk: dd bs=1M conv=fdatasync",-44} {dd,9:F0} MB/s");
            Console.WriteLine($"  {"libsodium secretstream, raw (memory)",-44} {raw,9:F0} MB/s");
            Console.WriteLine($"  {"SHA-256 (per-file hash in the manifest)",-44} {sha,9:F0} MB/s");
            Console.WriteLine($"  {"seal, CPU only (to Stream.Null)",-44} {cpu,9:F0} MB/s   {cpu / raw:F2} x libsodium, {cpu / (1 / (1 / raw + 1 / sha)):F2} x (libsodium then SHA-256 serially)");
            Console.WriteLine($"  {"per CPU-second (steady under load): libsodium",-44} {rawCpu,9:F0} MB/s, seal {sealCpu:F0} MB/s = {sealCpu / rawCpu:F2} x");
            Console.WriteLine($"  {"seal to file + fsync",-44} {sealed_,9:F0} MB/s   {sealed_ / dd:F2} x disk, {sealed_ / raw:F2} x libsodium");
            Console.WriteLine($"  {"seal into SealedBlobStore + commit",-44} {stored,9:F0} MB/s   {stored / dd:F2} x disk, {stored / raw:F2} x libsodium");
            // Sealing and storing pays secretstream and two SHA-256 passes (plaintext, ciphertext) per byte.
            var ceiling = MachineLimits.CeilingMBps(raw, sha, sha);
            Console.WriteLine($"  {$"ceiling on {Environment.ProcessorCount} cores (secretstream + 2 x SHA-256)",-44} {ceiling,9:F0} MB/s   {ceiling / raw:F2} x libsodium: seal and store reached {stored / ceiling:F2} of it");
            Console.WriteLine($"  ratio to the slower limit ({(dd <= raw ? "disk" : "libsodium")}): seal to file {sealed_ / limit:F2}, seal and store {stored / limit:F2}   (target >= 0.70: {(Math.Min(sealed_, stored) / limit >= 0.7 ? "met" : "MISSED")})");
            Console.WriteLine($"  peak memory sealing {sizeMiB} MiB (VmHWM, child process): to file {peak / 1024.0:F1} MiB, into the store {storePeak / 1024.0:F1} MiB   (target < 100 MiB: {(Math.Max(peak, storePeak) < 100 * 1024 ? "met" : "MISSED")})");
            return 0;
        }
        finally { Directory.Delete(work, recursive: true); }
    }

    /// <summary>Wall-clock throughput and throughput per second of this process's CPU time, which other load on the machine disturbs less.</summary>
    private static async Task<(double Wall, double PerCpu)> PerCpuSecond(Func<Task<double>> run, long bytes)
    {
        var before = Process.GetCurrentProcess().TotalProcessorTime;
        var wall = await run();
        var cpu = (Process.GetCurrentProcess().TotalProcessorTime - before).TotalSeconds;
        return (wall, bytes / cpu / 1e6);
    }

    private static async Task<(double MBps, long PeakKiB)> SealInChildAsync(string mode, string file, long bytes)
    {
        var self = Environment.ProcessPath!;
        var psi = Path.GetFileNameWithoutExtension(self) == "dotnet"
            ? new ProcessStartInfo(self, [Assembly.GetExecutingAssembly().Location, "seal", mode, file, bytes.ToString(CultureInfo.InvariantCulture)])
            : new ProcessStartInfo(self, ["seal", mode, file, bytes.ToString(CultureInfo.InvariantCulture)]);
        psi.RedirectStandardOutput = true;
        using var p = Process.Start(psi)!;
        var output = await p.StandardOutput.ReadToEndAsync();
        await p.WaitForExitAsync();
        if (Directory.Exists(file)) Directory.Delete(file, recursive: true); else File.Delete(file);
        var f = output.Trim().Split(' ');
        if (p.ExitCode != 0 || f.Length != 2) throw new InvalidOperationException("sealing child failed: " + output);
        return (double.Parse(f[0], CultureInfo.InvariantCulture), long.Parse(f[1], CultureInfo.InvariantCulture));
    }

    /// <summary>
    /// Sealed untimed in each child before the timed run: the daemon seals with its code already compiled, and a
    /// fresh process spent about a tenth of its CPU time in the JIT (perf, 2026-12-01).
    /// </summary>
    private const long WarmUpBytes = 256L << 20;

    /// <summary>In the child: seal to a fresh file (fsync) or into a fresh store (commit), print "MB/s VmHWM-KiB".</summary>
    private static async Task<int> ChildAsync(bool store, string path, long bytes)
    {
        double mbps;
        if (store)
        {
            using var blobs = SealedBlobStore.Open(path);
            await using (var warm = blobs.BeginSubmission())
            {
                await SealAsync(warm.Ciphertext, WarmUpBytes);
                await warm.CommitAsync();
            }
            var sw = Stopwatch.StartNew();
            await using var writer = blobs.BeginSubmission();
            await SealAsync(writer.Ciphertext, bytes);
            await writer.CommitAsync();
            mbps = bytes / sw.Elapsed.TotalSeconds / 1e6;
        }
        else
        {
            await SealAsync(Stream.Null, WarmUpBytes);
            await using var output = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 0);
            mbps = await SealAsync(output, bytes, fsync: output);
        }
        Console.WriteLine(FormattableString.Invariant($"{mbps:F1} {PeakKiB()}"));
        return 0;
    }

    private static async Task<double> SealAsync(Stream output, long bytes, FileStream? fsync = null)
    {
        var keys = Enumerable.Range(0, Recipients).Select(_ => JournalistKey.Generate()).ToList();
        var data = new byte[WriteSize];
        Random.Shared.NextBytes(data);
        var sw = Stopwatch.StartNew();
        await using (var sealer = new SubmissionSealer(output, keys.Select(k => k.PublicKey).ToList()))
        {
            await sealer.BeginFileAsync("bench.bin", "application/octet-stream");
            for (long done = 0; done < bytes; done += data.Length) await sealer.WriteAsync(data);
            await sealer.EndFileAsync();
            await sealer.CompleteAsync("bench", "", DateTimeOffset.UtcNow);
        }
        fsync?.Flush(flushToDisk: true);
        var elapsed = sw.Elapsed.TotalSeconds;
        keys.ForEach(k => k.Dispose());
        return bytes / elapsed / 1e6;
    }

    private static long PeakKiB() =>
        File.ReadLines("/proc/self/status").Where(l => l.StartsWith("VmHWM:"))
            .Select(l => long.Parse(l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture)).Single();
}
